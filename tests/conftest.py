"""Shared fixtures: the data directory and tiny models trained once per test session."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CHARLM = dict(embed_dim=16, hidden_size=32, num_layers=2, dropout=0.0, batch_size=16,
                   num_steps=50, epochs=1)


@pytest.fixture(scope="session")
def data_dir():
    path = Path(os.environ.get("RNNEDGE_DATA") or ROOT.parent / "shared" / "data")
    if not (path / "hamlet_pg2265.txt").is_file():
        pytest.fail(f"the data directory {path} lacks hamlet_pg2265.txt; set RNNEDGE_DATA")
    return path


def _train_and_export(tmp_path_factory, data_dir, name, **overrides):
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
def imdb_subset(tmp_path_factory, data_dir):
    """2,000 real IMDb training reviews (balanced) as a JSON-lines file."""
    import json

    from rnnedge.train.imdb import load_imdb

    reviews = load_imdb("train", data_dir)
    picked = reviews[:1000] + reviews[-1000:]  # negatives come first, positives last
    path = tmp_path_factory.mktemp("imdb") / "subset.jsonl"
    path.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in picked))
    return path


@pytest.fixture(scope="session")
def sentiment(tmp_path_factory, imdb_subset):
    """(checkpoint, onnx path) of a tiny 2-layer LSTM classifier trained one epoch on the subset."""
    from rnnedge.export.exporter import export
    from rnnedge.train.sentiment import train_sentiment

    out = tmp_path_factory.mktemp("sentiment")
    train_sentiment(out / "run", data=imdb_subset, echo=None, **TINY_SENTIMENT)
    path, _ = export(out / "run" / "best.pt", out / "model.onnx")
    return out / "run" / "best.pt", path
