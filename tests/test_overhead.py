"""The fast engines' short paths on the char model per call keep every check of the long ones.

``CharModel.run`` leaves the token range to the fast kernels, passes carried float32 states
through unconverted, and ``GraphModel.check`` tests their finiteness with the engine's
compiled ``all_finite``: the same typed errors and the same outputs as onnxruntime's.
"""

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.feeds import all_finite
from rnnedge.runtime.tolerances import FP32, INT8, compare


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_all_finite_is_numpys_isfinite_all(dtype):
    rng = np.random.default_rng(0)
    for shape in [(1,), (2, 1, 7), (3, 4, 5)]:
        x = rng.standard_normal(shape).astype(dtype)
        assert all_finite(x) is True
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y.flat[rng.integers(y.size)] = bad
            assert all_finite(y) is False
            assert all_finite(y[..., ::-1]) is False  # not contiguous
    big = np.full(5, np.finfo(dtype).max, dtype)
    assert all_finite(big) is True


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


def outcome(run, *args):
    """What a call gives: ("ok", outputs) or (error type, message)."""
    try:
        return "ok", run(*args)
    except Exception as error:  # noqa: BLE001 - compared, not swallowed
        return type(error), str(error)


def long_path(model):
    """``model`` with the one-pass common case off: every call checked the long way."""
    model.run_checked = model.core.run_checked = None
    return model


def char_inputs(model):
    """(what, tokens, state) of ``CharModel.run``: the common case, the cases converted on
    the way, and the bad ones, each bad thing alone."""
    V, (L, _, H) = len(model.vocab), model.zero_state(1)["h0"].shape
    rng = np.random.default_rng(2)
    state = {k: rng.standard_normal(v.shape).astype(np.float32)
             for k, v in model.zero_state(1).items()}
    pair = {k: rng.standard_normal((L, 2, H)).astype(np.float32) for k in state}
    tok = np.array([[3]])
    good = [("common", tok, state), ("batch 2, time 3", rng.integers(0, V, (2, 3)), pair),
            ("zero state", tok, None), ("int32", tok.astype(np.int32), state),
            ("list", [[1, 2]], state), ("strided tokens", np.arange(6)[None, ::2], state),
            ("fortran float64", tok, {k: np.asfortranarray(v, np.float64) for k, v in state.items()}),
            ("extra key", tok, {**state, "note": "kept out"}), ("read-only", tok, readonly(state))]
    bad = [("float tokens", tok.astype(np.float32), state), ("bool", np.array([[True]]), state),
           ("rank 1", np.array([1]), state), ("rank 3", tok[None], state),
           ("no time", np.zeros((1, 0), np.int64), state),
           ("hidden", tok, {**state, "h0": np.zeros((L, 1, H + 1), np.float32)}),
           ("layers", tok, {**state, "h0": np.zeros((L + 1, 1, H), np.float32)}),
           ("batch", tok, pair), ("lacks h0", tok, {k: v for k, v in state.items() if k != "h0"})]
    for name in state:
        for value in (np.nan, np.inf, -np.inf):
            broken = {**state, name: state[name].copy()}
            broken[name][-1, 0, -1] = value
            bad.append((f"{value} in {name}", tok, broken))
    out_of_vocab = [("id V", np.array([[1, V]]), state), ("id -1", np.array([[-1]]), state)]
    return good, bad, out_of_vocab


def readonly(state):
    state = {k: v.copy() for k, v in state.items()}
    for v in state.values():
        v.flags.writeable = False
    return state


@pytest.mark.parametrize("fixture", ["charlm", "charlm_gru"])
@pytest.mark.parametrize("engine, level", [("fast", FP32), ("fast-int8", INT8)])
def test_the_one_pass_common_case_gives_what_the_long_path_and_ort_give(request, fixture,
                                                                         engine, level):
    path = request.getfixturevalue(fixture)[1]
    fast, slow = rt.load(path, engine=engine), long_path(rt.load(path, engine=engine))
    ort = rt.load(path, engine="ort")
    assert fast.run_checked is not None and fast.core.run_checked is not None
    good, bad, out_of_vocab = char_inputs(fast)
    for what, tokens, state in good:
        given = None if state is None else {k: np.copy(v) for k, v in state.items()}
        kind, (logits, nxt) = outcome(fast.run, tokens, state)
        assert kind == "ok", what
        for k in given or {}:  # the caller's states are read, never written
            np.testing.assert_array_equal(state[k], given[k])
        _, (want_logits, want_next) = outcome(slow.run, tokens, state)
        np.testing.assert_array_equal(logits, want_logits)  # the same arithmetic: bit for bit
        assert nxt.keys() == want_next.keys()
        for k in nxt:
            np.testing.assert_array_equal(nxt[k], want_next[k])
            assert nxt[k].dtype == np.float32 and nxt[k].flags.c_contiguous
        _, (ort_logits, _) = outcome(ort.run, tokens, state)
        assert compare("logits", logits, ort_logits, level).ok, what
    for what, tokens, state in bad:
        got = outcome(fast.run, tokens, state)
        assert got[0] is InputError, (what, got)
        assert got == outcome(slow.run, tokens, state) == outcome(ort.run, tokens, state), what
    for what, tokens, state in out_of_vocab:  # the kernel words it: onnxruntime's check differs
        got = outcome(fast.run, tokens, state)
        assert got[0] is InputError and "outside the vocabulary" in got[1], what
        assert got == outcome(slow.run, tokens, state) and outcome(ort.run, tokens, state)[0] \
            is InputError, what


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
def test_the_one_pass_common_case_of_the_graph_refuses_feeds_as_check_does(charlm, engine):
    fast, slow = rt.load(charlm[1], engine=engine), long_path(rt.load(charlm[1], engine=engine))
    ort = rt.load(charlm[1], engine="ort")
    state = fast.zero_state(1)
    tok = np.array([[1]])
    for feeds in [{"tokens": tok, **state}, {"tokens": tok, "h0": state["h0"]},
                  {"tokens": tok, **state, "x": tok}, {"tokens": tok, "h0": state["h0"], "x": tok},
                  {"tokens": tok.astype(np.float64), **state}, {"tokens": tok > 0, **state},
                  {"tokens": tok, **state, "c0": state["c0"].astype(">f4")},
                  {"tokens": tok.astype(">i8"), **state}, [("tokens", tok)],
                  {"tokens": np.zeros((0, 1), np.int64), **fast.zero_state(0)}]:
        got = outcome(fast.core.run, feeds)
        if got[0] == "ok":
            want = outcome(slow.core.run, feeds)[1]
            assert all(np.array_equal(got[1][k], want[k]) for k in want)
        else:
            assert got == outcome(slow.core.run, feeds) == outcome(ort.core.run, feeds), feeds


@pytest.mark.parametrize("engine", ["ort", "fast-int8"])
def test_a_streamed_character_takes_the_short_path_with_the_same_answer(charlm, engine):
    """``Stream.step`` of one character uses the model's prebuilt ids; the same logits and
    states as the general path, and what the general path refuses is still refused."""
    model = rt.load(charlm[1], engine=engine)
    short, general = model.stream(), model.stream()
    for ch in "To be, or":
        got = short.step(ch)
        want = general.step_ids(model.encode(ch))
        np.testing.assert_array_equal(got, want)
    for key in short.state:
        np.testing.assert_array_equal(short.state[key], general.state[key])
    assert model.one[ch].flags.writeable and model.one[ch].shape == (1, 1)
    for bad in ("\u00a7", "", 7):
        with pytest.raises(InputError):
            short.step(bad)
    np.testing.assert_array_equal(short.step("ab"), general.step_ids(model.encode("ab")))
