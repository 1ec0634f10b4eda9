"""Streaming classification of real-valued frames (issue 12, item 4).

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
from rnnedge.runtime.tolerances import FP32, compare

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
    assert set(report["engines"]) == {"ort", "numba", "fast", "fast-int8", "floor"}
    assert report["states"] == {"h": "h_new", "c": "c_new", "pooled": "pooled_new",
                                "seen": "seen_new"}
