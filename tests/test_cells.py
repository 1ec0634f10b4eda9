"""Every cell through train, export, verify and evaluate, on small configurations."""

import pytest

import rnnedge.runtime as rt
from rnnedge.export.exporter import export
from rnnedge.deploy.verify import verify
from rnnedge.export.torch_engines import reference
from conftest import TINY_CHARLM, TINY_SENTIMENT

CELLS = [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")]


@pytest.mark.parametrize("cell, nonlinearity", CELLS)
def test_charlm_cell_trains_exports_and_verifies(tmp_path, data_dir, cell, nonlinearity):
    from rnnedge.train.charlm import train_charlm

    best = train_charlm(tmp_path, data_dir=data_dir, echo=None, cell=cell, nonlinearity=nonlinearity,
                        **{**TINY_CHARLM, "hidden_size": 16})
    assert best["val_bpc"] < 6.0  # below the uniform 6.0 bits of 65 characters after one epoch
    path, _ = export(tmp_path / "best.pt", tmp_path / "m.onnx")
    diffs = verify(path, reference=reference(tmp_path / "best.pt"), data_dir=data_dir)
    assert all(d.ok for d in diffs)
    assert rt.load(path).config["cell"] == cell
    assert rt.load(path, engine="numba").generate("The ", 20, seed=1) == rt.load(path).generate("The ", 20, seed=1)


@pytest.mark.parametrize("cell, nonlinearity, bidirectional",
                         [("gru", "tanh", False), ("rnn", "relu", False), ("lstm", "tanh", True)])
def test_sentiment_cell_trains_exports_verifies_and_evaluates(tmp_path, imdb_subset, data_dir, cell,
                                                               nonlinearity, bidirectional):
    from rnnedge.deploy.verify import verify
    from rnnedge.runtime.sentiment import evaluate
    from rnnedge.data.imdb import load_imdb
    from rnnedge.train.sentiment import train_sentiment

    train_sentiment(tmp_path / "run", data=imdb_subset, echo=None, cell=cell, nonlinearity=nonlinearity,
                    bidirectional=bidirectional, **{**TINY_SENTIMENT, "num_layers": 1})
    path, _ = export(tmp_path / "run" / "best.pt", tmp_path / "m.onnx")
    diffs = verify(path, reference(tmp_path / "run" / "best.pt"), data_dir, limit=64)
    assert all(d.ok for d in diffs), [str(d) for d in diffs if not d.ok]
    reviews = load_imdb("test", data_dir)[::250]  # 100 reviews, both labels
    scores = {engine: evaluate(rt.load(path, engine=engine), [r.text for r in reviews],
                               [r.label for r in reviews]) for engine in ("ort", "numba")}
    assert scores["ort"] == scores["numba"] and scores["ort"]["n"] == 100
    assert rt.load(path).config["cell"] == cell and rt.load(path).config["bidirectional"] == bidirectional
