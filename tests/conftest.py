"""Shared fixtures: the data directory and tiny models trained once per test session."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CHARLM = dict(embed_dim=16, hidden_size=32, num_layers=2, dropout=0.0, batch_size=16,
                   num_steps=50, epochs=1)


# A device's install has no torch: the test files that import it at the top are not
# collected there, and the summary names them (the rest, the runtime's, still run).
try:
    import torch  # noqa: F401  (most sessions import it anyway)

    TORCH_MISSING = False
except ImportError:
    TORCH_MISSING = True


def torch_files(folder):
    """The test files that import torch at the top, themselves or through a helper module of
    this folder that does (``user_models.py``)."""
    sources = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.py")}
    needs = {"torch"}
    while True:
        more = {name for name, text in sources.items() if name not in needs and re.search(
            rf"^(import|from) ({'|'.join(map(re.escape, needs))})\b", text, re.M)}
        if not more:
            return sorted(f"{name}.py" for name in needs - {"torch"})
        needs |= more


TORCH_FILES = torch_files(Path(__file__).parent)
collect_ignore = TORCH_FILES if TORCH_MISSING else []


TORCH_WORDS = ("No module named torch", "No module named 'torch'", "needs PyTorch")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Where torch is not installed, a test that fails or errs for want of it (in process, or
    a command that says it needs PyTorch) is reported as skipped, with that reason."""
    outcome = yield
    report = outcome.get_result()
    if TORCH_MISSING and report.failed and any(w in str(report.longrepr) for w in TORCH_WORDS):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           "Skipped: needs torch, which is not installed (a device's install)")


def pytest_terminal_summary(terminalreporter):
    if TORCH_MISSING:
        terminalreporter.write_line(f"not collected, torch is not installed: {len(TORCH_FILES)} "
                                    f"files ({', '.join(TORCH_FILES)})")


# Set by .ci/run: a data set that cannot be had fails its tests instead of skipping them.
REQUIRE_DATA = "RNNEDGE_REQUIRE_DATA"


def unavailable(data_set, exc):
    """Skip the test: ``data_set`` cannot be had (no file, no network); fail under REQUIRE_DATA=1."""
    reason = f"{data_set} unavailable: {exc}; set RNNEDGE_DATA or allow the download"
    if os.environ.get(REQUIRE_DATA) == "1":
        raise pytest.fail.Exception(reason, pytrace=False) from None  # the reason, not the chain
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir():
    """The data directory as the command line finds it, holding Hamlet (downloaded when missing)."""
    from rnnedge.data.download import data_dir as resolve
    from rnnedge.data.hamlet import HAMLET_FILE, load_text
    from rnnedge.runtime.errors import DataError

    path = resolve()
    try:
        load_text(data_dir_=path)
    except DataError as exc:
        if (path / HAMLET_FILE).is_file():
            raise  # the file is there but unreadable: a failure, not a missing data set
        unavailable("Hamlet", exc)
    return path


@pytest.fixture(scope="session")
def imdb_dir():
    """The data directory as the command line finds it, holding IMDb (downloaded when missing)."""
    from rnnedge.data.download import data_dir as resolve
    from rnnedge.data.imdb import ARCHIVES, load_imdb
    from rnnedge.runtime.errors import DataError

    path = resolve()
    try:
        load_imdb("train", path)  # both splits, cached in memory for the session
    except DataError as exc:
        if any((path / name).exists() for name in (*ARCHIVES, "aclImdb")):
            raise  # the archive is there but unreadable: a failure, not a missing data set
        unavailable("IMDb", exc)
    return path


def needs_torch():
    """Skip a test whose fixture trains or exports: a device's install has no torch."""
    pytest.importorskip("torch", reason="torch is not installed (a device's install): "
                                        "training and export are not tested here")


def _train_and_export(tmp_path_factory, data_dir, name, **overrides):
    needs_torch()
    from rnnedge.export.exporter import export
    from rnnedge.train.charlm import train_charlm

    out = tmp_path_factory.mktemp(name)
    train_charlm(out, data_dir=data_dir, echo=None, **{**TINY_CHARLM, **overrides})
    path, _ = export(out / "best.pt", out / "model.onnx")
    return out / "best.pt", path


@pytest.fixture(scope="session")
def charlm(tmp_path_factory, data_dir):
    """(checkpoint, onnx path) of a tiny 2-layer LSTM trained for one epoch on Hamlet."""
    return _train_and_export(tmp_path_factory, data_dir, "charlm_lstm")


@pytest.fixture(scope="session")
def charlm_gru(tmp_path_factory, data_dir):
    return _train_and_export(tmp_path_factory, data_dir, "charlm_gru", cell="gru")


TINY_SENTIMENT = dict(embed_dim=16, hidden_size=16, num_layers=2, dropout=0.1, max_len=120,
                      min_count=3, max_vocab=5000, epochs=1, batch_size=32, val_size=200)


@pytest.fixture(scope="session")
def imdb_subset(tmp_path_factory, imdb_dir):
    """2,000 real IMDb training reviews (balanced) as a JSON-lines file."""
    import json

    from rnnedge.data.imdb import load_imdb

    reviews = load_imdb("train", imdb_dir)
    picked = reviews[:1000] + reviews[-1000:]  # negatives come first, positives last
    path = tmp_path_factory.mktemp("imdb") / "subset.jsonl"
    path.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in picked))
    return path


@pytest.fixture(scope="session")
def sentiment(tmp_path_factory, imdb_subset):
    needs_torch()
    """(checkpoint, onnx path) of a tiny 2-layer LSTM classifier trained one epoch on the subset."""
    from rnnedge.export.exporter import export
    from rnnedge.train.sentiment import train_sentiment

    out = tmp_path_factory.mktemp("sentiment")
    train_sentiment(out / "run", data=imdb_subset, echo=None, **TINY_SENTIMENT)
    path, _ = export(out / "run" / "best.pt", out / "model.onnx")
    return out / "run" / "best.pt", path


@pytest.fixture(scope="session")
def user_corpus(tmp_path_factory):
    needs_torch()
    """name -> (module, exported .onnx path, ExportReport) for every model of tests/user_models.PASSING."""
    from rnnedge.export.user_model import export_model

    from user_models import PASSING

    out = tmp_path_factory.mktemp("user_corpus")
    corpus = {}
    for name, factory in PASSING.items():
        module, example, kwargs = factory()
        report = export_model(module, example, out / f"{name}.onnx", **kwargs)
        corpus[name] = (module, report.path, report)
    return corpus
