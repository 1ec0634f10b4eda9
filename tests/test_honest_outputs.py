"""What evaluate, optimize and bench report is what they did: which cases a --limit scored,
which nodes int8 quantized (and which it could not), what a gate-only variant is, how many
BLAS threads the floor ran on, and the shape, engines and chart bench was asked for.

Data-free but for the tests that name IMDb (``imdb_dir``) or a trained model (``sentiment``):
the optimize and bench tests run on the committed golden models.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.deploy.bench import bench
from rnnedge.deploy.evaluate import describe_sample, labelled_frames, reviews_to_score, stratified
from rnnedge.deploy.optimize import optimize, summary
from rnnedge.deploy.variants import fp32_weight_nodes, int8_nodes, quantize_int8
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.files import read_onnx
from rnnedge.runtime.golden import from_props
from rnnedge.runtime.metadata import read_metadata
from test_series import toy_rows, write_ts

GOLDEN = Path(__file__).parent / "golden"
CHARLM, KWS = GOLDEN / "tiny_charlm.onnx", GOLDEN / "tiny_kws.onnx"  # an LSTM; a GRU (user)
CLI = [sys.executable, "-m", "rnnedge.cli"]
QUICK = dict(steps=20, warmup=2)


# -- evaluate --limit: a seeded sample, stratified by class ---------------------------------------

def test_a_limit_takes_each_class_in_its_share_seeded():
    labels = np.array([0] * 12500 + [1] * 12500)  # the IMDb test split: negatives first
    keep, sample = stratified(labels, 500, names=("negative", "positive"))
    assert len(keep) == 500 and np.all(np.diff(keep) > 0)
    assert np.bincount(labels[keep]).tolist() == [250, 250]
    assert sample == {"scored": 500, "of": 25000, "sample": "stratified, seed 0", "seed": 0,
                      "per_class": {"negative": 250, "positive": 250}}
    assert np.array_equal(stratified(labels, 500)[0], keep)  # seeded
    assert not np.array_equal(stratified(labels, 500, seed=1)[0], keep)
    uneven = np.array([0] * 70 + [1] * 20 + [2] * 10)
    keep, sample = stratified(uneven, 11)
    assert np.bincount(uneven[keep]).tolist() == [8, 2, 1]  # 7.7, 2.2, 1.1 by largest remainder
    assert stratified(uneven, 500)[1] == {"scored": 100, "of": 100, "sample": "all"}
    with pytest.raises(InputError, match="limit must be >= 1, not 0"):
        stratified(uneven, 0)


def test_the_sample_is_described_in_words():
    _, even = stratified([0] * 10 + [1] * 10, 4, names=("negative", "positive"))
    assert describe_sample(even, "IMDb test reviews") == (
        "4 of 20 IMDb test reviews (seeded sample, seed 0, 2 per class)")
    _, uneven = stratified([0] * 30 + [1] * 10, 4, names=("negative", "positive"))
    assert describe_sample(uneven, "reviews") == (
        "4 of 40 reviews (seeded sample, seed 0, negative 3, positive 1)")
    _, everything = stratified([0, 1], None)
    assert describe_sample(everything, "reviews") == "all 2 reviews"


def test_a_labelled_file_sorted_by_class_is_sampled_from_both(tmp_path):
    rows = [{"text": f"review {k}", "label": int(k >= 10)} for k in range(20)]
    path = tmp_path / "sorted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sample = {}
    picked = reviews_to_score(data=path, limit=6, sample=sample)
    assert sorted(r.label for r in picked) == [0, 0, 0, 1, 1, 1]
    assert sample["scored"] == 6 and sample["of"] == 20
    assert sample["per_class"] == {"negative": 3, "positive": 3}


def test_the_imdb_test_split_limited_is_half_positive(imdb_dir):
    sample = {}
    reviews = reviews_to_score("test", data_dir=imdb_dir, limit=500, sample=sample)
    assert sum(r.label for r in reviews) == 250 and len({r.id for r in reviews}) == 500
    assert sample["of"] == 25000 and sample["per_class"] == {"negative": 250, "positive": 250}


def test_series_frames_limited_keep_every_class(tmp_path):
    rows = sorted(toy_rows(40, 2, seed=0), key=lambda r: r[-1])  # every "a" case, then every "b"
    path = write_ts(tmp_path / "sorted.ts", rows, dims=2)
    sample = {}
    frames, labels, name = labelled_frames(SimpleNamespace(classes=("a", "b")), data=path,
                                           limit=8, sample=sample)
    assert len(frames) == 8 and np.bincount(labels).tolist() == [4, 4] and name == str(path)
    assert sample["per_class"] == {"a": 4, "b": 4} and sample["of"] == 40


def test_evaluate_of_a_series_model_says_what_it_scored(tmp_path):
    from rnnedge.export.exporter import export
    from rnnedge.train.series import train_series

    train = write_ts(tmp_path / "toy_TRAIN.ts", toy_rows(40, 2, seed=0), dims=2)
    test = write_ts(tmp_path / "toy_TEST.ts", sorted(toy_rows(30, 2, seed=1), key=lambda r: r[-1]),
                    dims=2)
    train_series(tmp_path / "run", data=train, hidden_size=8, epochs=3, patience=3, threads=1,
                 device="cpu", echo=None)
    model, _ = export(tmp_path / "run" / "best.pt", tmp_path / "toy.onnx")
    args = [*CLI, "evaluate", str(model), "--data", str(test), "--limit", "6"]
    text = subprocess.run(args, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[-1] == (f"scored 6 of 30 cases of {test} (seeded sample, "
                                            f"seed 0, 3 per class)")
    result = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True).stdout)
    assert result["n"] == 6 and result["per_class"] == {"a": 3, "b": 3}
    assert sum(map(sum, result["confusion"])) == 6


def test_evaluate_says_what_it_scored(sentiment, imdb_dir):
    env = dict(os.environ, RNNEDGE_DATA=str(imdb_dir))
    args = [*CLI, "evaluate", str(sentiment[1]), "--limit", "40"]
    text = subprocess.run(args, capture_output=True, text=True, env=env)
    assert text.returncode == 0, text.stderr
    assert "on 40 of 25,000 IMDb test reviews (seeded sample, seed 0, 20 per class) with ort" in text.stdout
    done = subprocess.run([*args, "--json", "--seed", "3"], capture_output=True, text=True, env=env)
    result = json.loads(done.stdout)
    assert (result["scored"], result["of"], result["sample"]) == (40, 25000, "stratified, seed 3")
    assert result["n"] == 40 and result["per_class"] == {"negative": 20, "positive": 20}


# -- optimize: what int8 quantized, and what a gate-only variant is ------------------------------

def golden_inputs(path, tmp_path):
    """An .npz of the first golden case's inputs: what the gate compares outputs on."""
    case = from_props(read_metadata(read_onnx(path)).props)[0]
    out = tmp_path / "inputs.npz"
    np.savez(out, **case.inputs)
    return out


def recurrent_graph():
    """LSTM, GRU and RNN nodes side by side on one input, each with fp32 weights, and a MatMul."""
    rng = np.random.default_rng(0)
    X, H = 4, 8
    weight = lambda name, *shape: numpy_helper.from_array(  # noqa: E731
        rng.standard_normal(shape).astype(np.float32), name)
    inits, nodes, outputs = [weight("head", H, 3)], [], []
    for op, gates in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
        inits += [weight(f"{op}_W", 1, gates * H, X), weight(f"{op}_R", 1, gates * H, H)]
        nodes.append(helper.make_node(op, ["x", f"{op}_W", f"{op}_R"], [f"{op}_y"], hidden_size=H,
                                      name=f"{op.lower()}_node"))
        outputs.append(helper.make_tensor_value_info(f"{op}_y", TensorProto.FLOAT, None))
    nodes.append(helper.make_node("MatMul", ["LSTM_y", "head"], ["scores"], name="head_node"))
    outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, None))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", X])
    graph = helper.make_graph(nodes, "recurrent", [x], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnxruntime_dynamic_int8_quantizes_lstm_and_not_gru_or_rnn():
    """The installed onnxruntime's real behaviour, which optimize's summary reports."""
    model, _ = quantize_int8(recurrent_graph())
    assert int8_nodes(model) == {"LSTM": 1, "MatMul": 1}
    assert sorted(n["op_type"] for n in fp32_weight_nodes(model)) == ["GRU", "RNN"]


def test_int8_of_a_gru_names_what_was_quantized_and_that_no_recurrent_node_was(tmp_path):
    report = optimize(KWS, tmp_path / "int8.onnx", int8=True, force=True)
    assert report["int8_nodes"] == {"MatMul": 1} and report["graph_unchanged"] is False
    assert [n["op_type"] for n in report["fp32_weight_nodes"]] == ["GRU"]
    text = summary(report)
    assert "int8: 1 MatMul; stays fp32: 1 GRU (/gru/GRU)" in text
    assert ("no recurrent node quantized: onnxruntime's dynamic int8 covers LSTM, not GRU/RNN; "
            "--numba-int8 quantizes all three") in text
    assert read_metadata(read_onnx(tmp_path / "int8.onnx")).props["rnnedge.variant_engine"] == "ort"


def test_int8_of_an_lstm_counts_its_quantized_nodes(tmp_path):
    report = optimize(CHARLM, tmp_path / "int8.onnx", int8=True, force=True,
                      inputs=golden_inputs(CHARLM, tmp_path))
    assert report["int8_nodes"] == {"LSTM": 1, "Gather": 1, "MatMul": 1}
    assert "int8: 1 LSTM, 1 Gather, 1 MatMul; stays fp32: none" in summary(report)
    assert "no recurrent node" not in summary(report)


def test_numba_int8_is_a_gate_only_variant_and_says_so(tmp_path):
    out = tmp_path / "numba-int8.onnx"
    report = optimize(KWS, out, numba_int8=True, force=True)
    assert report["gate_only"] and report["graph_unchanged"] and report["engine"] == "fast-int8"
    assert report["int8_nodes"] == {}
    assert read_onnx(out).graph == read_onnx(KWS).graph
    props = read_metadata(read_onnx(out)).props
    assert props["rnnedge.variant"] == "numba-int8" and props["rnnedge.variant_engine"] == "fast-int8"
    text = summary(report)
    assert "a gate-only variant" in text and "the file is the fp32 model unchanged" in text
    assert "int8 is applied at load by --engine fast-int8" in text


def test_bench_times_a_gate_only_variant_as_its_engine_not_as_ort_int8(tmp_path):
    inputs = golden_inputs(CHARLM, tmp_path)
    gate_only, int8 = tmp_path / "numba-int8.onnx", tmp_path / "int8.onnx"
    optimize(CHARLM, gate_only, numba_int8=True, force=True, inputs=inputs)
    optimize(CHARLM, int8, int8=True, force=True, inputs=inputs)
    report, text = bench(CHARLM, variants=(gate_only, int8), engines=("fast",), **QUICK)
    assert set(report["engines"]) == {"ort", "ort-direct", "fast", "gate-only: fast-int8",
                                      "ort-int8", "floor", "panel-floor", "int8-floor"}
    tolerance = {p["name"]: p["tolerance"] for p in report["parity"]}
    assert tolerance["gate-only: fast-int8 vs ort logits"] == "int8"
    assert f"{gate_only} is a gate-only variant" in report["gate_only"]["gate-only: fast-int8"]
    assert "timed as fast-int8 over that file" in text and "ort-numba-int8" not in text


# -- bench: BLAS threads, engines, shapes, the chart ---------------------------------------------

def test_bench_runs_the_numpy_floor_on_one_blas_thread(tmp_path):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    done = subprocess.run([*CLI, "bench", str(KWS), "--steps", "20", "--warmup", "2", "--json"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["blas_threads"] == 1


def test_the_blas_thread_count_is_restored_after_bench():
    from rnnedge.deploy.timing import blas_controls, blas_threads

    controls = blas_controls()
    if controls is None:
        pytest.skip("numpy's BLAS is neither OpenBLAS nor MKL here")
    before = controls[1]()
    with blas_threads(1) as inside:
        assert inside == 1 == controls[1]()
    assert controls[1]() == before


def test_bench_engine_picks_engines_and_ort_always_runs():
    report, _ = bench(KWS, engines=("fast",), **QUICK)
    assert set(report["engines"]) == {"ort", "ort-direct", "fast", "floor"}
    with pytest.raises(InputError, match="--engine fastest: choose from ort, numba, fast, fast-int8"):
        bench(KWS, engines=("fastest",), **QUICK)


def test_bench_batch_and_time_time_whole_sequences_of_that_shape():
    report, text = bench(KWS, batch=3, time=7, engines=("fast",), **QUICK)
    assert (report["workload"], report["batch"], report["time"]) == ("whole", 3, 7)
    assert "batch 3, a whole sequence of 7 frames per call" in text
    assert "floor" not in report["engines"] and "batch 1" in report["skipped"]["floor"]
    assert bench(KWS, time=9, engines=("fast",), **QUICK)[0]["time"] == 9


def test_bench_refuses_a_shape_a_kind_cannot_take(sentiment):
    with pytest.raises(InputError, match="char model is timed streaming"):
        bench(CHARLM, time=5, **QUICK)
    with pytest.raises(InputError, match="char model is timed streaming"):
        bench(CHARLM, batch=4, **QUICK)
    with pytest.raises(InputError, match="--time: a review classifier is timed on real reviews"):
        bench(sentiment[1], time=5, **QUICK)
    with pytest.raises(InputError, match="--batch must be >= 1, not 0"):
        bench(KWS, batch=0, **QUICK)
    with pytest.raises(InputError, match="--variant files are timed beside the char model and the review classifier"):
        bench(KWS, variants=(KWS,), **QUICK)


def test_bench_plot_writes_a_png_bar_chart(tmp_path):
    import matplotlib.image

    out = tmp_path / "latency.png"
    done = subprocess.run([*CLI, "bench", str(KWS), "--steps", "20", "--warmup", "2", "--plot",
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {out}" in done.stdout
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > 400 and height > 150
    with pytest.raises(InputError, match="ending in .png"):
        bench(KWS, plot=tmp_path / "latency.svg", **QUICK)


def test_bench_plot_without_matplotlib_is_one_line_before_any_timing(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'matplotlib':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([*CLI, "bench", str(KWS), "--plot", str(tmp_path / "x.png")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("rnnedge: error: rnnedge bench needs matplotlib: "
                           "pip install 'rnnedge[plot]'\n")
    assert not (tmp_path / "x.png").exists()
