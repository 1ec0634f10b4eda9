"""What the repository may hold: code, configs, small results and small golden files.

Data sets live in the data directory (``rnnedge.data.download``) and trained models in
``runs/``; neither is ever committed. The files checked are those git tracks plus the
untracked ones it does not ignore (about to be added). Only ``tests/golden`` may hold
model files, each small (``tests/golden/make_golden.py`` writes them).
"""

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = PurePosixPath("tests/golden")
MB = 1 << 20
ANY_FILE_LIMIT = MB
GOLDEN_LIMIT = 100_000  # each golden file; they are a few KB
TEXT_LIMIT = 100_000  # a .txt over this is a corpus
ARRAYS_LIMIT = 200_000  # a .npz over this is a data set
DATA_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".ts", ".arff", ".parquet")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
MODEL_SUFFIXES = (".onnx", ".ort")
IGNORED = ("runs/demo/charlm/best.pt", "runs/x.onnx", "model.pt", "sub/model.onnx", "sub/model.ort")
NOT_IGNORED = ("tests/golden/tiny_charlm.onnx", "tests/golden/tiny_kws.onnx")


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def files():
    """{path: bytes} of the tracked files and the untracked ones git does not ignore."""
    if shutil.which("git") is None or git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: there is no list of committed files to check")
    names = (git("ls-files").stdout.split("\n")
             + git("ls-files", "--others", "--exclude-standard").stdout.split("\n"))
    return {PurePosixPath(n): (ROOT / n).stat().st_size for n in names if n and (ROOT / n).is_file()}


def problem(path, size):
    """Why ``path`` (of ``size`` bytes) must not be committed, or ""."""
    name, golden = path.name.lower(), path.parent == GOLDEN
    if name.endswith(CHECKPOINT_SUFFIXES):
        return "a checkpoint (trained models live in runs/)"
    if name.endswith(MODEL_SUFFIXES) and not golden:
        return "a model file outside tests/golden (trained models live in runs/)"
    if name.endswith(DATA_SUFFIXES):
        return "a data set archive (data sets live in the data directory)"
    if name.endswith(".txt") and size > TEXT_LIMIT:
        return f"a text file over {TEXT_LIMIT:,} bytes: a corpus belongs in the data directory"
    if name.endswith(".npz") and size > ARRAYS_LIMIT:
        return f"arrays over {ARRAYS_LIMIT:,} bytes: a data set belongs in the data directory"
    if golden and size > GOLDEN_LIMIT:
        return f"a golden file over {GOLDEN_LIMIT:,} bytes: golden models must stay tiny"
    if size > ANY_FILE_LIMIT:
        return f"over {ANY_FILE_LIMIT:,} bytes"
    return ""


def test_no_data_sets_or_trained_models_are_committed(files):
    bad = {str(p): f"{why} ({size:,} bytes)" for p, size in files.items() if (why := problem(p, size))}
    assert not bad, "remove these from git (git rm --cached):\n" + "\n".join(f"{p}: {w}" for p, w in bad.items())


def test_the_golden_files_are_listed(files):
    assert {p.name for p in files if p.parent == GOLDEN} >= {"make_golden.py", "tiny_charlm.onnx",
                                                              "tiny_kws.onnx", "io.npz"}


@pytest.mark.parametrize("path, size, refused", [
    ("runs/demo/charlm/best.pt", 10, True), ("model.pth", 10, True), ("a/b.ckpt", 10, True),
    ("runs/charlm.onnx", 10, True), ("tests/golden/big.onnx", 200_000, True),
    ("tests/golden/tiny.onnx", 5_000, False), ("tests/golden/deeper/x.onnx", 5_000, True),
    ("aclImdb_labeled.tar.gz", 10, True), ("JapaneseVowels_TRAIN.ts", 10, True),
    ("hamlet_pg2265.txt", 178_707, True), ("notes.txt", 2_000, False),
    ("benchmarks/results/x.npz", 300_000, True), ("benchmarks/results/bench.json", 260_000, False),
    ("benchmarks/results/huge.json", 2 * MB, True)])
def test_the_rules_refuse_data_and_models_and_keep_small_files(path, size, refused):
    assert bool(problem(PurePosixPath(path), size)) == refused


def test_gitignore_keeps_runs_and_models_out_but_lets_golden_models_in(files):
    ignored = lambda p: git("check-ignore", "-q", "--no-index", p).returncode == 0
    assert [p for p in IGNORED if not ignored(p)] == []
    assert [p for p in NOT_IGNORED if ignored(p)] == []
