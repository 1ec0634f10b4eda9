"""Real-valued frames: the readers, training, export, the runtime and the commands.

Japanese Vowels comes from the data directory (skipped, or failed under
RNNEDGE_REQUIRE_DATA=1, when it cannot be had); every header variant of the ``.ts`` format
is covered by small synthetic files written here. One tiny GRU is trained per session.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.data.series import Series, load_series, load_vowels, relabel, split_stratified
from rnnedge.runtime.errors import DataError, InputError
from rnnedge.runtime.tolerances import FP32, compare

from conftest import needs_torch

TINY = dict(hidden_size=16, epochs=12, patience=12, threads=1, device="cpu", echo=None)
HEADER = "#comment\n@problemName toy\n@timeStamps false\n@missing {missing}\n@univariate {uni}\n" \
         "{dims}@equalLength {equal}\n{length}@classLabel {labels}\n@data\n"


def cli():
    script = Path(sys.executable).parent / "rnnedge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnnedge.cli"]


def run_cli(*args, env=None):
    done = subprocess.run([*cli(), *map(str, args)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def write_ts(path, rows, uni=False, dims=None, equal=False, length=None, labels="true a b",
             missing=False):
    header = HEADER.format(missing=str(missing).lower(), uni=str(uni).lower(),
                           dims=f"@dimensions {dims}\n" if dims else "", equal=str(equal).lower(),
                           length=f"@seriesLength {length}\n" if length else "", labels=labels)
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def toy_rows(n=40, channels=2, seed=0, equal=False):
    """Two classes told apart by the sign of their mean; lengths 3-12 unless ``equal``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        label = "ab"[k % 2]
        T = 8 if equal else int(rng.integers(3, 13))
        x = rng.standard_normal((channels, T)) + (1.5 if label == "a" else -1.5)
        rows.append(":".join(",".join(f"{v:.5f}" for v in ch) for ch in x) + f":{label}")
    return rows


@pytest.fixture(scope="module")
def vowels():
    from conftest import unavailable

    try:
        return load_vowels("train"), load_vowels("test")
    except DataError as exc:
        unavailable("Japanese Vowels", exc)


@pytest.fixture(scope="module")
def trained(vowels, tmp_path_factory):
    """(run dir, metrics, onnx path, export diffs) of a tiny GRU on Japanese Vowels."""
    needs_torch()
    from rnnedge.export.exporter import export
    from rnnedge.train.series import train_series

    out = tmp_path_factory.mktemp("series") / "run"
    metrics = train_series(out, **TINY)
    path, diffs = export(out / "best.pt", out.parent / "vowels.onnx")
    return out, metrics, path, diffs


def test_japanese_vowels_reads_as_documented(vowels):
    for data, n, longest in zip(vowels, (270, 370), (26, 29)):
        assert len(data.X) == n and data.channels == 12 and data.y.shape == (n,)
        assert data.lengths.min() == 7 and data.lengths.max() == longest
        assert data.classes == tuple("123456789") and set(data.y) == set(range(9))
        assert all(x.dtype == np.float32 for x in data.X)


def test_npz_and_csv_hold_the_same_cases_as_the_ts_file(vowels, tmp_path):
    data = vowels[0]
    X = np.zeros((len(data.X), data.lengths.max(), data.channels), np.float32)
    for k, x in enumerate(data.X):
        X[k, :len(x)] = x
    names = np.array([data.classes[k] for k in data.y])
    np.savez(tmp_path / "v.npz", X=X, lengths=data.lengths, y=names)
    lines = ["id,t," + ",".join(f"c{c}" for c in range(12)) + ",label"]
    lines += [f"u{k},{t}," + ",".join(repr(float(v)) for v in frame) + f",{names[k]}"
              for k, x in enumerate(data.X) for t, frame in reversed(list(enumerate(x)))]
    (tmp_path / "v.csv").write_text("\n".join(lines) + "\n")
    for other in (load_series(tmp_path / "v.npz"), load_series(tmp_path / "v.csv")):
        assert other.classes == data.classes and np.array_equal(other.y, data.y)
        assert all(np.array_equal(a, b) for a, b in zip(other.X, data.X)) and len(other.X) == 270


@pytest.mark.parametrize("variant", ["univariate_equal", "multivariate_variable", "unlabelled",
                                     "series_length", "interpolated"])
def test_every_ts_header_variant_reads(tmp_path, variant):
    path = tmp_path / "toy.ts"
    if variant == "univariate_equal":
        s = load_series(write_ts(path, toy_rows(6, 1, equal=True), uni=True, equal=True))
        assert s.channels == 1 and set(s.lengths) == {8} and s.classes == ("a", "b")
    elif variant == "multivariate_variable":
        s = load_series(write_ts(path, toy_rows(6, 3), dims=3))
        assert s.channels == 3 and len(set(s.lengths)) > 1 and list(s.y) == [0, 1] * 3
    elif variant == "unlabelled":
        rows = [r.rsplit(":", 1)[0] for r in toy_rows(4, 2)]
        s = load_series(write_ts(path, rows, dims=2, labels="false"))
        assert s.y is None and s.classes == () and len(s.X) == 4
    elif variant == "series_length":
        s = load_series(write_ts(path, ["1,2,3:x", "4,5,6:y"], uni=True, equal=True, length=3,
                                 labels="true y x"))
        assert s.classes == ("y", "x") and list(s.y) == [1, 0]
    else:
        path = write_ts(path, ["1,?,3:0,0,0:a", "NaN,2,2:1,1,1:b"], dims=2, missing=True)
        with pytest.raises(DataError, match=r"line 10: missing value at frame 2, channel 1"):
            load_series(path)
        s = load_series(path, missing="interpolate")
        assert s.X[0][:, 0].tolist() == [1, 2, 3] and s.X[1][:, 0].tolist() == [2, 2, 2]


@pytest.mark.parametrize("rows, extra, message", [
    (["1,2:3,4:a", "1,2:3:b"], {}, r"line 10: .*dimensions have different lengths"),
    (["1,2:3,4:a", "1,2:c"], {}, r"line 10: class label 'c' is not one of"),
    (["1,2:3,4:a", "1,x:3,4:b"], {}, r"line 10, dimension 1, value 2: 'x' is not a number"),
    (["1,2:3,4:a", "1,2:b"], {"dims": 2}, r"line 11: 1 dimension\(s\).*says @dimensions 2"),
    (["1,2:3,4:a", "1,2:3,4:b", "1,2,3:3,4,5:a"], {"equal": True}, r"line 11: case 3 has 3 frames, the header promises equal lengths of 2"),
    (["1,2:3,4:a", "inf,2:3,4:b"], {}, r"line 10, dimension 1, value 1: 'inf' is not finite"),
])
def test_bad_ts_files_are_typed_errors_naming_the_line(tmp_path, rows, extra, message):
    with pytest.raises(DataError, match=message):
        load_series(write_ts(tmp_path / "bad.ts", rows, **extra))


@pytest.mark.parametrize("text, message", [
    ("@problemName x\n1,2:a\n", r"line 2: data before @data"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n", r"line 3: @timeStamps true is not"),
    ("@dimensions two\n", r"line 1: @dimensions needs one positive integer"),
    ("@classLabel true\n", r"line 1: @classLabel true lists no class labels"),
    ("@data\n1,2:a\n", r"line 2: @data came before @classLabel"),
])
def test_bad_ts_headers_are_typed_errors_naming_the_line(tmp_path, text, message):
    (tmp_path / "bad.ts").write_text(text)
    with pytest.raises(DataError, match=message):
        load_series(tmp_path / "bad.ts")


def test_bad_csv_and_npz_files_are_typed_errors(tmp_path):
    (tmp_path / "a.csv").write_text("id,t,x,label\n1,0,0.5,a\n1,1,0.7,b\n")
    with pytest.raises(DataError, match=r"a.csv, line 3: label 'b' differs"):
        load_series(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("id,x,label\n1,0.5,a\n")
    with pytest.raises(DataError, match=r"line 1: no 't' column"):
        load_series(tmp_path / "b.csv")
    np.savez(tmp_path / "c.npz", X=np.zeros((2, 3)), y=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"X of shape \(cases, time, channels\)"):
        load_series(tmp_path / "c.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        load_series(tmp_path / "d.txt")


def test_validation_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(3), [10, 20, 30])
    train, val = split_stratified(y, 0.2, seed=4)
    assert sorted(np.concatenate([train, val])) == list(range(60))
    assert np.bincount(y[val]).tolist() == [2, 4, 6]
    assert np.array_equal(val, split_stratified(y, 0.2, seed=4)[1])


def test_a_tiny_gru_learns_japanese_vowels(trained, vowels):
    from rnnedge.train import checkpoint
    from rnnedge.train.series import fit_norm

    out, metrics, _, _ = trained
    assert metrics["test_acc"] > 0.7, metrics  # 0.908 measured (seed 0, one thread); chance 0.11
    best = checkpoint.load(out / "best.pt", "series")
    assert best["vocab"] == list("123456789") and best["metrics"]["test_acc"] == metrics["test_acc"]
    train_idx, _ = split_stratified(vowels[0].y, best["train_config"]["val_fraction"], 0)
    assert np.allclose(best["norm"]["mean"], fit_norm([vowels[0].X[i] for i in train_idx])["mean"])


def test_export_passes_the_gate_and_describes_the_task(trained):
    _, _, path, diffs = trained
    assert diffs and all(d.ok for d in diffs), [str(d) for d in diffs]
    model = rt.load(path)
    assert model.kind == "series" and model.classes == tuple("123456789") and model.channels == 12
    assert json.loads(model.meta.props["rnnedge.user"])["norm"]["std"] == model.norm["std"]
    assert model.meta.props["rnnedge.kind"] == "series" and model.meta.vocab == list("123456789")


def test_verify_checks_every_engine_against_the_golden_bundle(trained):
    from rnnedge.deploy.verify import verify

    diffs = verify(trained[2])
    names = " | ".join(d.name for d in diffs)
    for engine in ("ort", "numba", "fast", "fast-int8"):
        assert f"{engine} vs golden (PyTorch)" in names
    assert "fast-int8 streamed vs whole" in names and all(d.ok for d in diffs)


def test_a_series_file_whose_metadata_disagrees_with_its_graph_is_refused(trained, tmp_path):
    import onnx

    from rnnedge.runtime.errors import ModelFileError

    proto = onnx.load(str(trained[2]))
    props = {p.key: p for p in proto.metadata_props}
    props["rnnedge.vocab"].value = json.dumps(["a", "b"])
    config = json.loads(props["rnnedge.config"].value)
    props["rnnedge.config"].value = json.dumps({**config, "channels": 3})
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelFileError, match="2 class names for 9 outputs; 3 channels where the "
                                             "graph takes 12"):
        rt.load(tmp_path / "bad.onnx")


def test_the_graph_normalises_raw_frames_as_training_did(trained, vowels):
    import torch

    from rnnedge.train import checkpoint
    from rnnedge.train.series import normalise, pad
    from rnnedge.train.series_model import build_model

    out, _, path, _ = trained
    ckpt = checkpoint.load(out / "best.pt", "series")
    cases = vowels[1].X[:9]
    with torch.no_grad():
        logits = build_model(ckpt)(*pad(normalise(cases, ckpt["norm"]), list(range(9)), "cpu"))
    expected = torch.softmax(logits, -1).numpy()
    got = rt.load(path).predict(cases, batch_size=9)  # raw frames in
    assert compare("probs", got, expected, FP32).ok


@pytest.mark.parametrize("engine", ["ort", "numba", "fast"])
def test_padding_and_batching_cannot_change_an_answer(trained, vowels, engine):
    model = rt.load(trained[2], engine=engine)
    cases = vowels[1].X[:12]
    alone = np.concatenate([model.predict([c]) for c in cases])
    batched = model.predict(cases, batch_size=5)
    frames = np.random.default_rng(0).standard_normal((12, 40, 12)).astype(np.float32)  # junk pad
    for k, c in enumerate(cases):
        frames[k, :len(c)] = c
    lengths = np.array([len(c) for c in cases], np.int64)
    junk = model.run({"frames": frames, "lengths": lengths})["probs"]
    for name, got in (("batched", batched), ("junk-padded", junk)):
        assert compare(f"{engine} {name}", got, alone, FP32).ok
    with pytest.raises(InputError, match=r"case 0 has shape \(5, 3\)"):
        model.predict([np.zeros((5, 3))])


def test_commands_run_torch_free(trained, vowels, tmp_path):
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=str(blocker.parent))
    path, test_file = trained[2], tmp_path / "few.ts"
    write_ts(test_file, vowel_rows(vowels[1], 20), dims=12, labels="true " + " ".join("123456789"))
    rows = json.loads(run_cli("classify-series", path, test_file, "--json", env=env))["results"]
    probs = rt.load(path).predict(vowels[1].X[:20])
    assert [r["class"] for r in rows] == [str(k + 1) for k in probs.argmax(1)]
    assert np.allclose([r["prob"] for r in rows], probs.max(1), atol=1e-6)
    result = json.loads(run_cli("evaluate", path, "--data", test_file, "--json", env=env))
    truth = relabel(load_series(test_file), tuple("123456789"))
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == truth))
    assert np.array(result["confusion"]).sum() == 20 and set(result["recall"]) == set("123456789")
    assert "accuracy" in run_cli("evaluate", path, "--data", test_file, "--engine", "fast", env=env)


def vowel_rows(data, n):
    """The first ``n`` cases of ``data`` as lines of a .ts file."""
    return [":".join(",".join(repr(float(v)) for v in x[:, c]) for c in range(x.shape[1]))
            + f":{data.classes[y]}" for x, y in zip(data.X[:n], data.y[:n])]


def test_any_ts_file_trains_exports_and_evaluates_by_command(tmp_path):
    train = write_ts(tmp_path / "toy_TRAIN.ts", toy_rows(60, 1, equal=True), uni=True, equal=True)
    test = write_ts(tmp_path / "toy_TEST.ts", toy_rows(30, 1, seed=1, equal=True), uni=True, equal=True)
    run_cli("train", "series", "--data", train, "--test", test, "--out", tmp_path / "run",
            "--epochs", 3, "--hidden-size", 8, "--cell", "lstm", "--head", "last",
            "--bidirectional", "--threads", 1, "--device", "cpu")
    run_cli("export", tmp_path / "run" / "best.pt", "--out", tmp_path / "toy.onnx")
    assert rt.load(tmp_path / "toy.onnx").config["bidirectional"] is True
    result = json.loads(run_cli("evaluate", tmp_path / "toy.onnx", "--data", test, "--json"))
    assert result["n"] == 30 and result["accuracy"] > 0.8  # the classes differ by 3 std


def test_resume_continues_with_the_checkpoint_settings(tmp_path):
    from rnnedge.train.series import train_series

    data = write_ts(tmp_path / "toy.ts", toy_rows(30, 2), dims=2)
    settings = dict(data=data, hidden_size=8, threads=1, device="cpu", echo=None)
    train_series(tmp_path / "run", epochs=2, **settings)
    again = train_series(tmp_path / "run", resume=tmp_path / "run", epochs=4, **settings)
    assert "test_acc" not in again
    log = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if "val_acc" in r] == [1, 2, 3, 4]
    with pytest.raises(InputError, match="hidden_size 8 in the checkpoint, 16 given"):
        train_series(tmp_path / "run", resume=tmp_path / "run", **{**settings, "hidden_size": 16})
    assert isinstance(load_series(data), Series)


def test_class_names_that_would_reach_the_terminal_as_escapes_are_refused(trained, tmp_path):
    import onnx

    from rnnedge.runtime.errors import ModelFileError

    proto = onnx.load(str(trained[2]))
    props = {p.key: p for p in proto.metadata_props}
    names = json.loads(props["rnnedge.vocab"].value)
    props["rnnedge.vocab"].value = json.dumps(["\x1b]0;owned\x07", *names[1:]])
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelFileError, match="not distinct, printable, non-empty text"):
        rt.load(tmp_path / "bad.onnx")
