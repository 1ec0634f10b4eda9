"""What the commands print: one ``--json`` layout for every command, ``--quiet`` leaves the
result alone, and every command's help ends with an example.

The committed golden files need neither torch nor data; the training case trains a tiny
model for a few seconds on a made-up text.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import rnnedge.cli  # noqa: F401  (registers every command on ``app``)
from rnnedge.cli.app import app
from test_readme import check_call, rnnedge_calls

GOLDEN = Path(__file__).parent / "golden"
CLI = [sys.executable, "-m", "rnnedge.cli"]


def run(*args, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("command, args", [
    ("info", [GOLDEN / "tiny_kws.onnx"]),
    ("verify", [GOLDEN / "tiny_charlm.onnx"]),
    ("bench", [GOLDEN / "tiny_kws.onnx", "--steps", "20", "--warmup", "2"]),
])
def test_every_json_is_one_object_that_names_its_command(command, args):
    done = run(command, *args, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole of stdout: one JSON document
    assert isinstance(report, dict) and next(iter(report)) == "command"
    assert report["command"] == command


def test_verify_json_holds_the_counts_and_every_comparison():
    report = json.loads(run("verify", GOLDEN / "tiny_charlm.onnx", "--json").stdout)
    assert report["model"].endswith("tiny_charlm.onnx") and report["failed"] == 0
    assert report["passed"] == len(report["comparisons"]) > 10
    assert {"name", "ok", "max_abs"} <= set(report["comparisons"][0])


def test_quiet_verify_prints_the_count_alone():
    loud = run("verify", GOLDEN / "tiny_charlm.onnx")
    quiet = run("--quiet", "verify", GOLDEN / "tiny_charlm.onnx")
    assert loud.returncode == quiet.returncode == 0
    count = loud.stdout.strip().splitlines()[-1]
    assert count.endswith("passed, 0 failed") and len(loud.stdout.splitlines()) > 5
    assert quiet.stdout.strip() == count and quiet.stderr == ""


def test_quiet_training_prints_no_progress_and_keeps_the_result(tmp_path):
    pytest.importorskip("torch")
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question. " * 200)
    flags = ["--text", text, "--epochs", "1", "--hidden-size", "16", "--embed-dim", "8",
             "--num-layers", "1", "--batch-size", "8", "--num-steps", "20", "--threads", "1"]
    loud = run("train", "charlm", "--out", tmp_path / "loud", *flags)
    quiet = run("--quiet", "train", "charlm", "--out", tmp_path / "quiet", *flags)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "epoch 1:" in loud.stdout and "training on cpu" in loud.stdout
    assert quiet.stdout.strip().splitlines() == [loud.stdout.strip().splitlines()[-1]
                                                 .replace(str(tmp_path / "loud"), str(tmp_path / "quiet"))]
    assert quiet.stderr == ""  # no progress lines either
    log = (tmp_path / "quiet" / "train_log.jsonl").read_text()
    assert '"epoch": 1' in log  # quiet on the terminal, not in the run's log


def commands(group=None, prefix=("rnnedge",)):
    """(path, click command) of every command of the app."""
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


@pytest.mark.parametrize("path, command", list(commands()), ids=[p for p, _ in commands()])
def test_every_command_help_ends_with_an_example_of_itself(path, command):
    example = (command.epilog or "").strip()
    assert example.startswith("Example:"), f"{path} has no example in its help"
    assert f"{path} " in example or example.endswith(path), example
    (args,) = rnnedge_calls(example.removeprefix("Example:"))  # names real options
    assert check_call(args) is None, check_call(args)


def test_stage_lines_start_after_five_seconds_and_never_under_quiet(monkeypatch):
    import io

    from rnnedge.runtime.quiet import ENV, Stages

    now = [100.0]
    out = io.StringIO()
    stage = Stages("verify", after=5.0, stream=out, clock=lambda: now[0])
    stage("loading")  # 0 s in: a quick command says nothing
    now[0] = 112.4
    stage("real data")
    assert out.getvalue() == "verify: real data (12 s)\n"
    monkeypatch.setenv(ENV, "1")
    stage("streaming")
    assert out.getvalue() == "verify: real data (12 s)\n"
