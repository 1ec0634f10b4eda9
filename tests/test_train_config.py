"""Training settings: each default once (the dataclasses), presets, flags, and the resume rule."""

import subprocess
import sys
from pathlib import Path

import pytest

from rnnedge.runtime.errors import InputError
from rnnedge.train.config import (CharLMConfig, CharTrainConfig, SentimentConfig,
                                  SentimentTrainConfig, SeriesConfig, SeriesTrainConfig, gather,
                                  load_preset, resumed)

ROOT = Path(__file__).resolve().parents[1]


def test_given_settings_override_the_preset_which_overrides_the_defaults(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('hidden_size = 64\nlr = 0.01\ncell = "gru"\n')
    model, train = gather(CharLMConfig, CharTrainConfig, preset, {"lr": 0.5, "epochs": None})
    assert model == {"hidden_size": 64, "cell": "gru"}
    assert train == {"lr": 0.5}  # None means "not given": the default stays
    assert CharTrainConfig(**train).epochs == CharTrainConfig().epochs


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_committed_preset_is_valid_for_its_task(preset):
    task = preset.name.split("_")[0]
    classes = {"hamlet": (CharLMConfig, CharTrainConfig), "imdb": (SentimentConfig, SentimentTrainConfig),
               "vowels": (SeriesConfig, SeriesTrainConfig)}[task]  # a new task's preset names it
    model, train = gather(*classes, preset)
    classes[1](**train)
    (classes[0](vocab_size=10, **model) if classes[0] is CharLMConfig else classes[0](**model))


def test_unknown_and_mistyped_settings_and_bad_presets_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown setting.*hiden_size"):
        gather(CharLMConfig, CharTrainConfig, given={"hiden_size": 3})
    with pytest.raises(InputError, match="unknown setting.*vocab_size"):
        gather(CharLMConfig, CharTrainConfig, given={"vocab_size": 3})  # filled in from the data
    with pytest.raises(InputError, match="unknown setting.*channels"):
        gather(SeriesConfig, SeriesTrainConfig, given={"channels": 3})
    with pytest.raises(InputError, match="setting lr must be a float, not 'fast'"):
        gather(CharLMConfig, CharTrainConfig, given={"lr": "fast"})
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_preset(bad)
    with pytest.raises(InputError, match="is a directory"):
        load_preset(tmp_path)
    nested = tmp_path / "nested.toml"
    nested.write_text("[model]\nhidden_size = 3\n")
    with pytest.raises(InputError, match=r"tables \[model\] are not settings"):
        load_preset(nested)


def test_resume_keeps_the_checkpoint_settings_takes_epochs_and_refuses_other_changes():
    ckpt = {"config": {"vocab_size": 50, "hidden_size": 32, "cell": "lstm"},
            "train_config": {"batch_size": 16, "num_steps": 50, "lr": 0.002, "clip": 5.0,
                             "epochs": 2, "seed": 0}}
    tc = resumed(ckpt, CharTrainConfig, {"hidden_size": 32}, {"epochs": 5, "lr": 0.002}, "run/last.pt")
    assert (tc.epochs, tc.batch_size, tc.num_steps) == (5, 16, 50)
    with pytest.raises(InputError, match=r"hidden_size 32 in the checkpoint, 64 given; "
                                         r"lr 0.002 in the checkpoint, 0.1 given"):
        resumed(ckpt, CharTrainConfig, {"hidden_size": 64}, {"lr": 0.1}, "run/last.pt")


def test_the_cli_takes_a_preset_and_reports_a_bad_one_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("hidden = 3\n")
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "train", "charlm", "--config", str(bad),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        done.stderr.strip().splitlines()[0]] and "unknown setting(s) hidden" in done.stderr
    assert not (tmp_path / "run").exists()
