"""The training commands' flags are made from the config dataclasses: a setting written once."""

import dataclasses
from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

import rnnedge.cli  # noqa: F401  (importing the package registers every command on ``app``)
from rnnedge.cli.app import HELP, app
from rnnedge.cli.train import with_settings
from rnnedge.train.config import (CharLMConfig, CharTrainConfig, SentimentConfig,
                                  SentimentTrainConfig, SeriesConfig, SeriesTrainConfig, setting,
                                  setting_fields)

COMMANDS = {"charlm": (CharTrainConfig, CharLMConfig),
            "sentiment": (SentimentTrainConfig, SentimentConfig),
            "series": (SeriesTrainConfig, SeriesConfig)}


def command(name):
    train = typer.main.get_command(app).commands["train"]
    return train.commands[name]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_setting_is_a_flag_in_field_order_and_nothing_filled_from_data(name):
    params = [p.name for p in command(name).params]
    fields = [f.name for cls in COMMANDS[name] for f in setting_fields(cls)]
    assert params[-len(fields):] == fields
    from_data = {f.name for cls in COMMANDS[name] for f in dataclasses.fields(cls)} - set(fields)
    assert from_data <= {"vocab_size", "channels", "num_classes"} and not from_data & set(params)


def test_a_new_field_brings_its_flag_help_default_and_type():
    @dataclass(frozen=True)
    class Settings:
        depth: int = 3
        rate: float = setting(0.5, "how fast")
        wide: bool = setting(False, off="narrow")

    seen = {}
    demo = typer.Typer(**HELP)

    @demo.command()
    @with_settings(Settings)
    def run(name: str = typer.Option("x", help="a name"), **given):
        seen.update(name=name, **given)

    runner = CliRunner()
    shown = " ".join(runner.invoke(demo, ["-h"]).output.split())
    assert "--depth <int> [default: 3]" in shown and "--rate <float> how fast [default: 0.5]" in shown
    assert "--wide / --narrow [default: narrow]" in shown
    assert runner.invoke(demo, ["--depth", "7", "--wide"]).exit_code == 0
    assert seen == {"name": "x", "depth": 7, "rate": None, "wide": True}  # None: not given
    assert runner.invoke(demo, ["--depth", "deep"]).exit_code == 2
