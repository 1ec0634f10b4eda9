"""Sentiment export: every head, uni- and bidirectional, matches PyTorch; padding is inert."""

from dataclasses import asdict

import numpy as np
import onnx
import pytest
import torch

from rnnedge.export import exporter
from rnnedge.runtime.engines import NumbaEngine, OrtEngine
from rnnedge.runtime.tolerances import FP32, assert_close


def random_checkpoint(cell="lstm", head="last", bidirectional=False, num_layers=2, vocab=50,
                      nonlinearity="tanh"):
    from rnnedge.runtime.tokenizer import SPECIALS, Tokenizer
    from rnnedge.train.config import SentimentConfig
    from rnnedge.train.sentiment_model import SentimentModel

    torch.manual_seed(0)
    config = SentimentConfig(vocab_size=vocab, embed_dim=6, hidden_size=5, num_layers=num_layers,
                             cell=cell, head=head, bidirectional=bidirectional, dropout=0.0,
                             nonlinearity=nonlinearity)
    model = SentimentModel(config)
    tokenizer = Tokenizer(list(SPECIALS) + [f"w{i}" for i in range(vocab - 2)], max_len=30)
    return {"task": "sentiment", "config": asdict(config), "vocab": tokenizer.to_dict(),
            "model": model.state_dict(), "epoch": 0, "metrics": {}}


CASES = [(c, h, b) for c in ("lstm", "gru", "rnn") for h in ("last", "mean", "max")
         for b in (False, True)]


@pytest.mark.parametrize("cell, head, bidirectional", CASES)
def test_export_matches_pytorch(cell, head, bidirectional):
    ckpt = random_checkpoint(cell, head, bidirectional, nonlinearity="relu" if head == "max" else "tanh")
    model = exporter.build(ckpt, "0" * 64)
    onnx.checker.check_model(model, full_check=True)
    diffs = exporter.validate(ckpt, model)
    assert all(d.ok for d in diffs)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count(cell.upper()) == 2


@pytest.mark.parametrize("cell, head, bidirectional", CASES)
@pytest.mark.parametrize("engine", [OrtEngine, NumbaEngine])
def test_a_review_scores_the_same_alone_and_in_any_padded_batch(engine, cell, head, bidirectional):
    run = engine(exporter.build(random_checkpoint(cell, head, bidirectional), "0" * 64)).run
    rng = np.random.default_rng(1)
    review = rng.integers(2, 50, 13)
    alone = run({"tokens": review[None, :], "lengths": np.array([13])})["prob"][0]
    for batch in (1, 7, 64):
        lengths = rng.integers(1, 80, batch)
        pos = int(rng.integers(0, batch))
        lengths[pos] = 13
        tokens = np.zeros((batch, lengths.max()), np.int64)
        for i, n in enumerate(lengths):
            tokens[i, :n] = rng.integers(2, 50, n)
        tokens[pos, :13] = review
        got = run({"tokens": tokens, "lengths": lengths})["prob"][pos]
        assert_close(f"batch {batch}", got, alone, FP32)
