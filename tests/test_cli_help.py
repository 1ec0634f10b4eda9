"""The command line's own help: what a newcomer reads before anything else."""

import subprocess
import sys

from rnnedge.runtime import __version__

CLI = [sys.executable, "-m", "rnnedge.cli"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True)


def test_version_and_the_short_help_flag():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rnnedge {__version__}"
    short, long = run("-h"), run("--help")
    assert short.returncode == 0 and short.stdout == long.stdout and "verify" in short.stdout
    assert run("export", "-h").stdout == run("export", "--help").stdout


def test_help_keeps_square_brackets_and_defaults():
    """Rich markup ate "[batch,time,40]" from the --input example and every "[default: ...]"."""
    export = run("export", "-h").stdout
    assert "feats:float32[batch,time,40]" in " ".join(export.split())
    train = run("train", "charlm", "-h").stdout
    assert "[default: runs/charlm]" in train
