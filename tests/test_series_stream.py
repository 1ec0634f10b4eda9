"""Streaming classification of real-valued frames.

Tiny forward GRU and LSTM models (one epoch on a synthetic two-class ``.ts`` file, so
neither data set nor much time is needed) are exported with their states; a case fed frame
by frame must end where the whole case ends, on every engine, and the whole-sequence
answers must be those of the module without states. A bidirectional model must refuse to
stream; ``rnnedge bench`` must stream a series file, one frame per call, on every engine.
"""

import json
import subprocess

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.tolerances import FP32, INT8, compare

from test_series import cli, toy_rows, write_ts

KINDS = [("gru", "mean", 1), ("gru", "max", 2), ("gru", "last", 1),
         ("lstm", "mean", 2), ("lstm", "max", 1), ("lstm", "last", 1)]
ENGINES = ("ort", "numba", "fast")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_ts(tmp_path_factory.mktemp("stream") / "toy.ts", toy_rows(24, 3), dims=3)


def export_toy(toy, cell, head, layers, bidirectional=False):
    """(onnx path, loaded checkpoint, export diffs) of a one-epoch model on ``toy``."""
    from rnnedge.export.exporter import export
    from rnnedge.train import checkpoint
    from rnnedge.train.series import train_series

    out = toy.parent / f"{cell}_{head}_{layers}_{bidirectional}"
    train_series(out, data=toy, cell=cell, head=head, num_layers=layers, hidden_size=8,
                 bidirectional=bidirectional, epochs=1, threads=1, device="cpu", echo=None)
    path, diffs = export(out / "best.pt", out.with_suffix(".onnx"))
    return path, checkpoint.load(out / "best.pt", "series"), diffs


@pytest.fixture(scope="module")
def exported(toy):
    return {kind: export_toy(toy, *kind) for kind in KINDS}


def cases(seed=0, lengths=(1, 7, 13)):
    rng = np.random.default_rng(seed)
    return [(2.0 * rng.standard_normal((T, 3)) + 1.0).astype(np.float32) for T in lengths]


@pytest.mark.parametrize("kind", KINDS, ids=["-".join(map(str, k)) for k in KINDS])
def test_a_stream_ends_where_the_whole_case_ends(exported, kind):
    path, _, diffs = exported[kind]
    assert all(d.ok for d in diffs), [str(d) for d in diffs]
    for engine in ENGINES:
        model = rt.load(path, engine=engine)
        whole = model.predict(cases(), batch_size=3)  # padded, from zero states
        for k, case in enumerate(cases()):
            stream = model.stream()
            for t in range(len(case)):  # frames (1, C) and (1, 1, C) alike
                so_far = stream.step(case[t:t + 1] if t % 2 else case[None, t:t + 1])
            assert so_far.shape == (2,) and compare(f"{engine} {kind} case {k}", so_far,
                                                    whole[k], FP32).ok
            if len(case) > 4:  # chunks of any size
                stream.reset()
                stream.step(case[:4])
                assert compare(f"{engine} chunks", stream.step(case[4:]), whole[k], FP32).ok


@pytest.mark.parametrize("kind", KINDS[:4], ids=["-".join(map(str, k)) for k in KINDS[:4]])
def test_whole_answers_and_padded_states_are_unchanged(exported, kind):
    import torch

    from rnnedge.train.series_model import build_normalised

    path, ckpt, _ = exported[kind]
    model = rt.load(path)
    frames = np.random.default_rng(1).standard_normal((3, 13, 3)).astype(np.float32)  # junk pad
    for k, case in enumerate(cases()):
        frames[k, :len(case)] = case
    lengths = np.array([len(c) for c in cases()], np.int64)
    with torch.no_grad():  # the module of the file without states: today's answers
        _, expected = build_normalised(ckpt)(torch.from_numpy(frames), torch.from_numpy(lengths))
    out = model.run({"frames": frames, "lengths": lengths})
    assert compare("probs vs the stateless module", out["probs"], expected.numpy(), FP32).ok
    for k, case in enumerate(cases()):  # each row's states stop at its true length
        stream = model.stream()
        stream.step(case)
        for name, new in model.states.items():
            axis = 1 if name in ("h", "c") else 0
            alone = stream.states[name]
            assert compare(f"{new} row {k}", np.take(out[new], [k], axis), alone, FP32).ok


def test_a_bidirectional_model_refuses_to_stream(toy):
    path, ckpt, diffs = export_toy(toy, "gru", "mean", 1, bidirectional=True)
    model = rt.load(path)
    assert all(d.ok for d in diffs) and model.states == {}
    with pytest.raises(InputError, match="bidirectional model .* cannot stream"):
        model.stream()
    assert model.predict(cases()).shape == (3, 2)
    with pytest.raises(InputError, match="bidirectional model .* has no stream"):
        from rnnedge.train.series_model import Streaming, build_normalised

        Streaming(build_normalised(ckpt))


def test_a_stream_takes_one_case_of_the_model_s_channels(exported):
    model = rt.load(exported[KINDS[0]][0])
    with pytest.raises(InputError, match=r"shape \(2, 4\)"):
        model.stream().step(np.zeros((2, 4), np.float32))
    with pytest.raises(InputError, match="batch 1"):
        model.stream(batch=2)


def test_bench_streams_a_series_file_on_every_engine(exported):
    path = exported[("lstm", "mean", 2)][0]
    done = subprocess.run([*cli(), "bench", str(path), "--steps", "20", "--warmup", "5", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workload"] == "streaming" and report["skipped"] == {}
    assert set(report["engines"]) == {"ort", "ort-direct", "numba", "fast", "fast-int8", "floor"}
    assert report["states"] == {"h": "h_new", "c": "c_new", "pooled": "pooled_new",
                                "seen": "seen_new"}


def outcome(run, feeds):
    """What a call gives: ("ok", outputs) or (error type, message)."""
    try:
        return "ok", run(feeds)
    except Exception as error:  # noqa: BLE001 - compared, not swallowed
        return type(error), str(error)


def series_feeds(model, seed=3):
    """(what, feeds) of ``GraphModel.run``: the common case and ones converted on the way,
    then the bad ones (each bad thing alone) with whether ``check`` words them (then every
    engine says the same) or the engine does."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((1, 1, 3)).astype(np.float32)
    one = np.array([1], np.int64)
    states = {k: rng.standard_normal(v.shape).astype(np.float32)
              for k, v in model.zero_states(1).items()}
    states2 = {k: rng.standard_normal(v.shape).astype(np.float32)
               for k, v in model.zero_states(2).items()}
    frozen = {k: v.copy() for k, v in states.items()}
    for v in frozen.values():
        v.flags.writeable = False
    good = [("common", {"frames": frames, "lengths": one, **states}),
            ("batch 2, time 4, one padded", {"frames": rng.standard_normal((2, 4, 3)).astype(
                np.float32), "lengths": np.array([4, 2]), **states2}),
            ("float64 frames", {"frames": frames.astype(np.float64), "lengths": one, **states}),
            ("strided frames", {"frames": np.repeat(frames, 2, axis=2)[..., ::2], "lengths": one,
                                **states}),
            ("int32 lengths", {"frames": frames, "lengths": one.astype(np.int32), **states}),
            ("fortran float64 states", {"frames": frames, "lengths": one, **{
                k: np.asfortranarray(v, np.float64) for k, v in states.items()}}),
            ("read-only", {"frames": frames, "lengths": one, **frozen})]
    bad = [("nan frame", {"frames": np.full_like(frames, np.nan), "lengths": one, **states}, True),
           ("channels", {"frames": np.zeros((1, 1, 4), np.float32), "lengths": one, **states},
            True),
           ("no time", {"frames": np.zeros((1, 0, 3), np.float32), "lengths": one, **states}, True),
           ("lengths 0", {"frames": frames, "lengths": np.array([0]), **states}, False),
           ("lengths rank 2", {"frames": frames, "lengths": one[None], **states}, True),
           ("float lengths", {"frames": frames, "lengths": one.astype(np.float32), **states}, True),
           ("batch of states", {"frames": frames, "lengths": one, **states2}, True)]
    for name, value in states.items():
        for v in (np.nan, -np.inf):
            broken = {**states, name: value.copy()}
            broken[name].flat[-1] = v
            bad.append((f"{v} in {name}", {"frames": frames, "lengths": one, **broken}, True))
        bad.append((f"wide {name}", {"frames": frames, "lengths": one, **states,
                                     name: np.zeros(value.shape[:-1] + (value.shape[-1] + 1,),
                                                    np.float32)}, True))
    return good, bad


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
@pytest.mark.parametrize("kind", KINDS, ids=["-".join(map(str, k)) for k in KINDS])
def test_the_one_pass_common_case_gives_what_the_long_path_gives(exported, kind, engine):
    """``FastSeqEngine.run_checked`` skips ``GraphModel.check`` on the common case: the same
    outputs, bit for bit, as the checked path, the caller's states untouched, and for bad
    feeds the same typed error."""
    path = exported[kind][0]
    fast, slow, ort = (rt.load(path, engine=engine), rt.load(path, engine=engine),
                       rt.load(path, engine="ort"))
    slow.run_checked = None
    assert fast.run_checked is not None
    good, bad = series_feeds(fast)
    for what, feeds in good:  # the first two and the last are the common case itself
        assert (fast.engine.run_checked(feeds) is not None) == (what in (
            "common", "batch 2, time 4, one padded", "read-only")), what
        given = {k: np.copy(v) for k, v in feeds.items()}
        kind_, got = outcome(fast.run, feeds)
        assert kind_ == "ok", (what, got)
        for k, v in given.items():
            np.testing.assert_array_equal(feeds[k], v)
        want = outcome(slow.run, feeds)[1]
        assert got.keys() == want.keys()
        for k in got:
            np.testing.assert_array_equal(got[k], want[k], err_msg=what)
        assert compare("probs", got["probs"], ort.run(feeds)["probs"],
                       FP32 if engine == "fast" else INT8).ok, what
    for what, feeds, by_check in bad:
        got = outcome(fast.run, feeds)
        assert got[0] is InputError, (what, got)
        assert got == outcome(slow.run, feeds), what
        if by_check:  # else onnxruntime has its own say (it runs lengths 0)
            assert got == outcome(ort.run, feeds), what
