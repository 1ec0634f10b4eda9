"""``rnnedge verify`` and ``rnnedge bench`` on an exported model."""

import json
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

CLI = [sys.executable, "-m", "rnnedge.cli"]


def test_verify_compares_every_pair_on_random_and_real_text(charlm, data_dir):
    from rnnedge.deploy.verify import verify
    from rnnedge.export.torch_engines import reference

    diffs = verify(charlm[1], reference=reference(charlm[0]), data_dir=data_dir)
    names = " | ".join(d.name for d in diffs)
    for pair in ("ort vs torch", "numba vs torch", "fast vs torch", "fast-int8 vs torch",
                 "numba vs ort", "fast vs ort", "fast-int8 vs ort", "fast vs golden (PyTorch)",
                 "fast-int8 vs golden (PyTorch)", "ort streamed vs whole",
                 "fast-int8 streamed vs whole"):
        assert pair in names
    assert "hamlet B=4 T=200" in names and "golden case 2" in names
    assert all(d.ok for d in diffs), [str(d) for d in diffs if not d.ok]


def test_verify_exits_1_when_the_file_no_longer_matches_its_checkpoint(charlm, tmp_path):
    model = onnx.load(str(charlm[1]))
    fc = next(t for t in model.graph.initializer if t.name.startswith("fc_bias"))
    fc.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(fc) + np.float32(1e-2), fc.name))
    onnx.save(model, str(tmp_path / "tampered.onnx"))
    done = subprocess.run([*CLI, "verify", str(tmp_path / "tampered.onnx"), "--checkpoint",
                           str(charlm[0])], capture_output=True, text=True)
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "logits" in done.stdout
    ok = subprocess.run([*CLI, "verify", str(charlm[1]), "--checkpoint", str(charlm[0]), "--json"],
                        capture_output=True, text=True)
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["command"] == "verify" and report["failed"] == 0
    assert report["passed"] == len(report["comparisons"]) and all(r["ok"] for r in report["comparisons"])


def test_bench_reports_percentiles_and_ratios_after_parity(charlm):
    done = subprocess.run([*CLI, "bench", str(charlm[1]), "--checkpoint", str(charlm[0]),
                           "--steps", "60", "--warmup", "10", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["engines"]) == {"ort", "ort-direct", "numba", "fast", "fast-int8", "torch",
                                      "floor", "panel-floor", "int8-floor"}
    assert report["engines"]["ort-direct"]["p50_vs_ort_direct"] == 1.0
    assert report["engines"]["ort"]["p50_vs_ort"] == 1.0
    assert report["engines"]["floor"]["p50_vs_floor"] == 1.0 and report["skipped"] == {}
    assert report["engines"]["int8-floor"]["p50_vs_int8_floor"] == 1.0
    for r in report["engines"].values():
        assert r["n"] == 60 and 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"]
        assert r["torch_p50_over_this"] == report["engines"]["torch"]["p50_us"] / r["p50_us"]
    assert {p["name"] for p in report["parity"]} == {f"{e} vs ort logits" for e in
                                                     ("numba", "fast", "fast-int8", "torch", "ort-direct")}
    assert {p["tolerance"] for p in report["parity"]} == {"fp32", "int8"}
    assert all(p["ok"] for p in report["parity"])
    assert report["file_bytes"] == charlm[1].stat().st_size


def test_bench_runs_variants_and_skips_engines_that_cannot_run_a_file(charlm, data_dir, tmp_path):
    from rnnedge.deploy.optimize import optimize

    int8 = tmp_path / "int8.onnx"
    optimize(charlm[1], int8, int8=True, data_dir=data_dir, limit=2000)
    done = subprocess.run([*CLI, "bench", str(charlm[1]), "--variant", str(int8), "--steps", "30",
                           "--warmup", "5", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "ort-int8" in report["engines"]
    assert {p["name"]: p["tolerance"] for p in report["parity"]}["ort-int8 vs ort logits"] == "int8"
    # the int8 file itself: only onnxruntime runs DynamicQuantizeLSTM; the rest are named, not fatal
    done = subprocess.run([*CLI, "bench", str(int8), "--steps", "30", "--warmup", "5", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # fast is onnxruntime where no fused reader takes the graph: it runs, as fast as ort
    assert set(report["engines"]) == {"ort", "ort-direct", "fast"}
    assert set(report["skipped"]) == {"numba", "fast-int8", "floor"}
    assert "DynamicQuantizeLSTM" in report["skipped"]["numba"]
    assert "fp32 charlm graph" in report["skipped"]["floor"]
