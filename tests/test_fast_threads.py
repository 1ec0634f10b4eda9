"""The fast engines on several threads (``rt.load(..., threads=N)``): the batch rows spread
over numba's threads (``fused_stack.run_threads``), each row's arithmetic the one-thread
kernel's, so the outputs are the same bits at any thread count."""

from pathlib import Path

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError

GOLDEN = Path(__file__).parent / "golden"


def same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
@pytest.mark.parametrize("batch, time", [(5, 9), (3, 1), (1, 6)])
def test_a_chain_gives_the_same_bits_on_two_threads(engine, batch, time):
    rng = np.random.default_rng(batch * 10 + time)
    one = rt.load(GOLDEN / "tiny_kws.onnx", engine=engine, threads=1)
    two = rt.load(GOLDEN / "tiny_kws.onnx", engine=engine, threads=2)
    feeds = {"mels": rng.standard_normal((batch, time, 6)).astype(np.float32),
             "h": rng.standard_normal((1, batch, 8)).astype(np.float32)}
    same(one.run(feeds), two.run(feeds))
    assert two.engine.calls.threads >= 1  # capped at numba's thread count on a 1-core machine


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
def test_the_char_model_gives_the_same_bits_on_two_threads(engine):
    one = rt.load(GOLDEN / "tiny_charlm.onnx", engine=engine, threads=1)
    two = rt.load(GOLDEN / "tiny_charlm.onnx", engine=engine, threads=2)
    tokens = np.random.default_rng(0).integers(0, len(one.vocab), (6, 11))
    (a, sa), (b, sb) = one.run(tokens, one.zero_state(6)), two.run(tokens, two.zero_state(6))
    np.testing.assert_array_equal(a, b)
    same(sa, sb)


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
def test_a_classifier_gives_the_same_bits_on_two_threads(sentiment, engine):
    one = rt.load(sentiment[1], engine=engine, threads=1)
    two = rt.load(sentiment[1], engine=engine, threads=2)
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 50, (7, 30))
    lengths = rng.integers(1, 31, 7)
    for a, b in zip(one.run(tokens, lengths), two.run(tokens, lengths)):
        np.testing.assert_array_equal(a, b)


def test_errors_are_the_same_on_two_threads():
    two = rt.load(GOLDEN / "tiny_charlm.onnx", engine="fast", threads=2)
    with pytest.raises(InputError, match="outside the vocabulary"):
        two.run(np.array([[1, 2], [3, 10_000]]), two.zero_state(2))
