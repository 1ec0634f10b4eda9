"""Property-based fuzzing of the runtime's inputs: a correct result or a typed error, nothing else.

Random shapes, dtypes, NaN/inf, huge and empty values go to ``GraphModel.run``,
``GraphModel.stream().step``, ``CharModel.run`` and ``SentimentModel.run``/``classify`` on the
numba reference interpreter; every outcome must be an ``RnnedgeError`` or outputs equal to
onnxruntime's (FP32 tolerance) on the same feeds. Derandomized, so CI sees the same cases.
"""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import rnnedge.runtime as rt  # noqa: E402
from rnnedge.runtime.errors import RnnedgeError  # noqa: E402
from rnnedge.runtime.tolerances import FP32, compare  # noqa: E402

FUZZ = settings(max_examples=25, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8,
                          np.bool_, np.complex64])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
SPECIAL = st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30, 1e300, np.nan, np.inf, 3.5])


def arrays(max_dims=4, max_side=4):
    """Arrays of any listed dtype, rank 0..max_dims, sides 0..max_side, values hostile or plain."""
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)

    @st.composite
    def build(draw):
        dtype, shape = draw(DTYPES), draw(shapes)
        values = draw(st.lists(st.one_of(SPECIAL, FLOATS), min_size=1, max_size=8))
        flat = np.resize(np.array(values, np.float64), int(np.prod(shape)))
        with np.errstate(all="ignore"):
            return flat.reshape(shape).astype(dtype)
    return build()


def same_outcome(run_numba, run_ort):
    """Both engines refuse with a typed error, or both return outputs that agree within FP32."""
    try:
        got = run_numba()
    except RnnedgeError:
        with pytest.raises(RnnedgeError):
            run_ort()
        return
    want = run_ort()
    got, want = (r if isinstance(r, dict) else dict(enumerate(r)) for r in (got, want))
    assert got.keys() == want.keys()
    for name in want:
        diff = compare(str(name), got[name], want[name], FP32)
        assert diff.ok, str(diff)


@pytest.fixture(scope="module")
def engines(user_corpus):
    """{name: (numba model, ort model)} of two small user models, loaded once."""
    return {name: (rt.load(user_corpus[name][1], engine="numba"), rt.load(user_corpus[name][1]))
            for name in ("lstm_forecaster", "streaming_kws_gru")}


@FUZZ
@given(x=arrays())
def test_graph_model_run_is_right_or_refused(engines, x):
    numba, ort = engines["lstm_forecaster"]
    same_outcome(lambda: numba.run({"x": x}), lambda: ort.run({"x": x}))


@FUZZ
@given(mels=arrays(), batch=st.integers(1, 3))
def test_graph_stream_step_is_right_or_refused(engines, mels, batch):
    numba, ort = engines["streaming_kws_gru"]
    a, b = numba.stream(batch), ort.stream(batch)
    same_outcome(lambda: a.step({"mels": mels}), lambda: b.step({"mels": mels}))


@pytest.fixture(scope="module")
def char_engines(charlm):
    return rt.load(charlm[1], engine="numba"), rt.load(charlm[1])


@FUZZ
@given(tokens=arrays(max_dims=3, max_side=5), state=st.one_of(st.none(), arrays(max_dims=3)))
def test_char_model_run_is_right_or_refused(char_engines, tokens, state):
    numba, ort = char_engines
    states = None if state is None else {"h0": state, "c0": state}
    with np.errstate(all="ignore"):
        ids = np.abs(tokens) % 70 if tokens.dtype.kind in "iu" else tokens  # mostly in range
    same_outcome(lambda: numba.run(ids, states), lambda: ort.run(ids, states))


@pytest.fixture(scope="module")
def sentiment_engines(sentiment):
    return rt.load(sentiment[1], engine="numba"), rt.load(sentiment[1])


@FUZZ
@given(tokens=arrays(max_dims=3, max_side=6), lengths=arrays(max_dims=2, max_side=4))
def test_sentiment_run_is_right_or_refused(sentiment_engines, tokens, lengths):
    numba, ort = sentiment_engines
    same_outcome(lambda: numba.run(tokens, lengths), lambda: ort.run(tokens, lengths))


@FUZZ
@given(texts=st.lists(st.text(max_size=40), min_size=0, max_size=4),
       batch_size=st.integers(-2, 5))
def test_sentiment_classify_is_right_or_refused(sentiment_engines, texts, batch_size):
    numba, ort = sentiment_engines
    same_outcome(lambda: [numba.classify(texts, batch_size)], lambda: [ort.classify(texts, batch_size)])
