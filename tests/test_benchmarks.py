"""The benchmark suite end to end on the tiny fixtures: JSON, table and plots, parity first."""

import importlib.util
import json

import pytest

from conftest import ROOT


def _module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_suite_writes_json_table_and_plots(charlm, sentiment, data_dir, tmp_path):
    out = tmp_path / "results"
    _module("suite").main([
        "--charlm", str(charlm[1]), "--charlm-checkpoint", str(charlm[0]),
        "--sentiment", str(sentiment[1]), "--sentiment-checkpoint", str(sentiment[0]),
        "--out", str(out), "--work", str(tmp_path / "work"), "--data-dir", str(data_dir),
        "--steps", "60", "--rounds", "2", "--reviews", "16", "--gate-reviews", "100",
        "--hidden", "16", "32", "--startup-repeats", "1"])
    results = json.loads((out / "bench.json").read_text())

    stream = results["streaming"]
    written = {name for name, v in results["variants"]["charlm"].items() if v["written"]}
    assert written == {"int8", "fp16", "numba-int8"}  # Hamlet gates hold for the one-epoch model
    assert all(v["gate"]["chars"] > 10000 for v in results["variants"]["charlm"].values())
    assert set(stream["engines"]) == {"ort", "ort-direct", "numba", "fast", "fast-int8", "ort-int8",
                                      "ort-fp16", "torch", "floor", "panel-floor", "int8-floor", "fast-kernel",
                                      "fast-int8-kernel"}
    assert {p["name"]: p["tolerance"] for p in stream["parity"]} == {
        "numba vs ort logits": "fp32", "fast vs ort logits": "fp32", "fast-int8 vs ort logits": "int8",
        "ort-int8 vs ort logits": "int8", "ort-fp16 vs ort logits": "fp16", "torch vs ort logits": "fp32",
        "fast-kernel vs ort logits": "fp32", "fast-int8-kernel vs ort logits": "int8",
        "ort-direct vs ort logits": "fp32"}
    assert all(p["ok"] for p in stream["parity"])
    for name, r in stream["engines"].items():
        assert r["n"] == 60 and len(r["samples_us"]) == r["n"]
        assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"]
        assert r["p50_vs_floor"] == pytest.approx(r["p50_us"] / stream["engines"]["floor"]["p50_us"])
    # R0, [W1 | R1] and the output layer of the 2 x 32 LSTM, float32
    assert stream["floor_bytes"] == 4 * (4 * 32 * 32 + 4 * 32 * 64 + 32 * _vocab(charlm[1]))

    configs = {(r["engine"], r["threads"], r["batch"]) for r in results["streaming_throughput"]}
    assert configs == {(e, t, b) for e in stream["engines"] if "floor" not in e for t in (1, 2)
                       for b in (1, 8, 64)}

    sent = results["classifier"]
    s_written = {n for n, v in results["variants"]["sentiment"].items() if v["written"]}
    for name, v in results["variants"]["sentiment"].items():
        assert v["written"] or "gate" in v["error"]  # a failed gate is reported, not benchmarked
    assert {r["engine"] for r in sent["results"]} == {"ort", "ort-direct", "numba", "fast",
                                                      "fast-int8", "torch", "floor"} | {
        f"ort-{n}" for n in s_written}
    assert set(sent["latency_batch1"]) == {r["engine"] for r in sent["results"]}

    assert set(results["cells"]) == {"lstm", "gru", "rnn"}
    for cell, r in results["cells"].items():
        assert r["weights"] == "random"
        assert set(r["streaming"]["engines"]) == {"ort", "ort-direct", "fast", "fast-int8",
                                                  "ort-int8", "torch", "floor", "panel-floor",
                                                  "int8-floor"}
    assert [r["hidden_size"] for r in results["hidden_sweep"]] == [16, 32]

    cases = {r["case"]: r for r in results["startup"]}
    assert len(cases) == 7
    for name, r in cases.items():
        assert 0 < r["first_output_s"] <= r["exit_s"]
        assert name.startswith("python") or r["peak_rss_mb"] > 20

    table = (out / "bench.md").read_text()
    assert "| fast-int8 |" in table and "## Hidden size" in table and "peak RSS MB" in table
    for png in ("latency.png", "hidden.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _vocab(path):
    import rnnedge.runtime as rt

    return len(rt.load(path).vocab)


def test_spread_repeats_every_ratio_and_reports_its_range(charlm, sentiment, data_dir, tmp_path):
    spread = _module("spread")
    spread.main(["--charlm", str(charlm[1]), "--sentiment", str(sentiment[1]), "--runs", "2",
                 "--steps", "40", "--reviews", "8", "--data-dir", str(data_dir),
                 "--out", str(tmp_path)])
    runs = json.loads((tmp_path / "spread.json").read_text())
    assert len(runs) == 2
    names = {f"{a} / {b}" for a, b in spread.CHARLM} | {f"{e} reviews/s / ort"
                                                          for e in spread.CLASSIFIER}
    for run in runs:
        assert set(run["ratios"]) == names
        p50 = run["charlm_p50_us"]
        assert run["ratios"]["fast-int8 / floor"] == pytest.approx(p50["fast-int8"] / p50["floor"])
        assert run["ratios"]["fast reviews/s / ort"] == pytest.approx(
            run["reviews_per_s"]["fast"] / run["reviews_per_s"]["ort"])
    table = (tmp_path / "spread.md").read_text()
    values = [r["ratios"]["fast / ort"] for r in runs]
    median = (values[0] + values[1]) / 2
    assert f"| fast / ort | {median:.2f}x | {min(values):.2f}x | {max(values):.2f}x |" in table
    assert not list(tmp_path.glob("*.tmp"))


def test_matrix_times_every_engine_against_ort_direct_after_parity(tmp_path):
    pytest.importorskip("torch", reason="the matrix builds its models with torch")
    matrix = _module("matrix")
    matrix.main(["--cells", "lstm-8-1x1,lstm-8-2x3", "--rounds", "1", "--seconds", "0.05",
                 "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    results = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert [c["cell"] for c in results["cells"]] == ["lstm-8-1x1", "lstm-8-2x3"]
    for c in results["cells"]:
        assert c["fast_engine"].startswith("fused stack (chain reader")
        assert c["parity_ok"] and all(d["ok"] for d in c["parity"])
        # each engine's outputs (logits, h_new, c_new) against ort's, at its precision's level
        engines, outputs = ("ort-direct", "fast", "fast-int8", "numba"), ("logits", "h_new", "c_new")
        assert {(d["name"], d["tolerance"]) for d in c["parity"]} == {
            (f"{e} vs ort {o}", "int8" if e == "fast-int8" else "fp32")
            for e in engines for o in outputs}
        assert set(c["engines"]) == {"ort-direct", "ort", "fast", "fast-int8", "numba"}
        for r in c["engines"].values():
            assert r["n"] == c["calls_per_round"] and 0 < r["p50_us"] <= r["p99_us"]
            assert r["vs_ort_direct"] == pytest.approx(
                r["p50_us"] / c["engines"]["ort-direct"]["p50_us"])
    assert {n: (t["target"], t["cells"]) for n, t in results["targets"].items()} == {
        "fast": (1.0, 2), "fast-int8": (0.6, 2)}
    table = (tmp_path / "out" / "matrix.md").read_text()
    assert "| lstm-8-2x3 |" in table and "cells pass on every engine" in table
    if importlib.util.find_spec("matplotlib"):  # the plot is optional (the [plot] extra)
        assert (tmp_path / "out" / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(matrix.argparse.ArgumentTypeError, match="CELL-HIDDEN-BATCHxTIME"):
        matrix.parse_cells("lstm-8-1x1,conv-8-1x1")
