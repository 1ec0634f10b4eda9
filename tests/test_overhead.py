"""The fast char engine's short paths per call keep every check of the long ones.

``CharModel.run`` leaves the token range to the fast kernels, passes carried float32 states
through unconverted, and ``GraphModel.check`` tests their finiteness with the engine's
compiled ``all_finite``: the same typed errors and the same outputs as onnxruntime's.
"""

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.fast import FastCharEngine
from rnnedge.runtime.tolerances import FP32, INT8, compare


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_all_finite_is_numpys_isfinite_all(dtype):
    rng = np.random.default_rng(0)
    for shape in [(1,), (2, 1, 7), (3, 4, 5)]:
        x = rng.standard_normal(shape).astype(dtype)
        assert FastCharEngine.all_finite(x) is True
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y.flat[rng.integers(y.size)] = bad
            assert FastCharEngine.all_finite(y) is False
            assert FastCharEngine.all_finite(y[..., ::-1]) is False  # not contiguous
    big = np.full(5, np.finfo(dtype).max, dtype)
    assert FastCharEngine.all_finite(big) is True


@pytest.mark.parametrize("engine, level", [("fast", FP32), ("fast-int8", INT8)])
def test_fast_char_model_streams_as_ort_and_refuses_what_it_did(charlm, engine, level):
    fast, ort = rt.load(charlm[1], engine=engine), rt.load(charlm[1], engine="ort")
    rng = np.random.default_rng(1)
    state, want_state = fast.zero_state(1), ort.zero_state(1)
    for i in rng.integers(0, len(fast.vocab), 12):
        given = {k: v.copy() for k, v in state.items()}
        got, state_next = fast.run(np.array([[i]]), state)
        for k in state:  # the caller's state is read, never written
            np.testing.assert_array_equal(state[k], given[k])
        want, want_state = ort.run(np.array([[i]]), want_state)
        assert compare("logits", got, want, level).ok
        state = state_next
    vocab = len(fast.vocab)
    with pytest.raises(InputError, match=rf"token id {vocab} at \(0, 1\) is outside the vocab"):
        fast.run(np.array([[1, vocab]]), state)
    with pytest.raises(InputError, match=r"token id -1 at \(0, 0\)"):
        fast.run(np.array([[-1]], np.int32), state)
    with pytest.raises(InputError, match="integer ids"):
        fast.run(np.array([[True]]), state)
    for bad in (np.nan, np.inf):
        broken = {**state, "c0": state["c0"].copy()}
        broken["c0"][1, 0, 3] = bad
        with pytest.raises(InputError, match="c0 holds NaN or infinite values"):
            fast.run(np.array([[1]]), broken)
    with pytest.raises(InputError, match=r"h0 has shape \(2, 1, 3\)"):
        fast.run(np.array([[1]]), {**state, "h0": np.zeros((2, 1, 3), np.float32)})
    wide = {k: np.asfortranarray(v, np.float64) for k, v in state.items()}  # converted: same
    np.testing.assert_array_equal(fast.run(np.array([[2]]), wide)[0],
                                  fast.run(np.array([[2]]), state)[0])
