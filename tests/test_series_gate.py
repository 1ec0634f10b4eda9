"""The int8 gate of a series classifier: its accuracy on labelled frames.

Data-free: a tiny GRU is trained on a synthetic two-class ``.ts`` file written here, and the
gate reads another one. The gate's numbers must be the accuracies ``evaluate`` gives on the
two engines, and a variant that fails it is not written.
"""

import json

import pytest

from rnnedge.deploy.evaluate import evaluate_series, load_classifier
from rnnedge.deploy.gate_series import SeriesGates
from rnnedge.deploy.optimize import optimize
from rnnedge.runtime.errors import DataError, InputError
from test_series import run_cli, toy_rows, write_ts


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(onnx path, labelled test file) of a tiny GRU trained on synthetic frames."""
    from rnnedge.export.exporter import export
    from rnnedge.train.series import train_series

    root = tmp_path_factory.mktemp("gate")
    train = write_ts(root / "toy_TRAIN.ts", toy_rows(60, 2, seed=0), dims=2)
    test = write_ts(root / "toy_TEST.ts", toy_rows(41, 2, seed=1), dims=2)
    train_series(root / "run", data=train, hidden_size=8, epochs=15, patience=15, threads=1,
                 device="cpu", echo=None)
    path, _ = export(root / "run" / "best.pt", root / "toy.onnx")
    return path, test


def test_the_gate_reports_the_accuracies_evaluate_gives(toy, tmp_path):
    path, test = toy
    report = optimize(path, tmp_path / "v.onnx", numba_int8=True, data=test, force=True)
    gate = report["gate"]
    fp32 = evaluate_series(load_classifier(path, engine="ort"), data=test)["accuracy"]
    int8 = evaluate_series(load_classifier(path, engine="fast-int8"), data=test)["accuracy"]
    assert gate["cases"] == 41 and gate["data"] == str(test)
    assert gate["accuracy_fp32"] == pytest.approx(fp32, abs=1e-12)
    assert gate["accuracy"] == pytest.approx(int8, abs=1e-12)
    assert gate["drop_points"] == pytest.approx(100 * (fp32 - int8), abs=1e-9)
    assert gate["passed"] == (gate["drop_points"] <= 0.5 and gate["agreement"] >= 0.98)
    assert gate["engines"] == {"reference": "ort", "candidate": "fast-int8"}


def test_a_variant_that_fails_is_not_written(toy, tmp_path):
    path, test = toy
    impossible = SeriesGates(max_drop_points=-1.0)  # it would have to gain a point
    with pytest.raises(Exception, match="accuracy drops by"):
        optimize(path, tmp_path / "v.onnx", numba_int8=True, data=test, gates=impossible)
    assert list(tmp_path.iterdir()) == []


def test_limit_caps_the_cases(toy, tmp_path):
    path, test = toy
    gate = optimize(path, tmp_path / "v.onnx", numba_int8=True, data=test, limit=7,
                    force=True)["gate"]
    assert gate["cases"] == 7


def test_data_is_refused_where_it_means_nothing(toy, tmp_path):
    path, test = toy
    with pytest.raises(InputError, match="--data gates a series classifier"):
        optimize(path, tmp_path / "v.onnx", numba_int8=True, data=test,
                 inputs=tmp_path / "in.npz")


def test_data_of_other_classes_is_a_data_error(toy, tmp_path):
    path, _ = toy
    other = write_ts(tmp_path / "other.ts", ["1,2,3:0,0,0:x", "4,5,6:1,1,1:a"], dims=2,
                     labels="true x a")
    with pytest.raises(DataError, match="x"):
        optimize(path, tmp_path / "v.onnx", numba_int8=True, data=other)
    assert not (tmp_path / "v.onnx").exists()


def test_the_command_prints_the_accuracy_gate(toy, tmp_path):
    path, test = toy
    out = run_cli("optimize", path, "--numba-int8", "--out", tmp_path / "v.onnx", "--data", test,
                  "--force", "--json")
    gate = json.loads(out)["gate"]
    assert gate["cases"] == 41 and "accuracy_fp32" in gate
    text = run_cli("optimize", path, "--numba-int8", "--out", tmp_path / "w.onnx", "--data", test,
                   "--force")
    assert f"gate on 41 labelled cases of {test}" in text
    assert "accuracy" in text and "classes agree on" in text


def test_verify_holds_the_file_to_its_checkpoint_and_refuses_another(toy, tmp_path):
    import subprocess

    from test_series import cli
    from rnnedge.train.series import train_series

    path, test = toy
    run = path.parent / "run"
    ok = subprocess.run([*cli(), "verify", str(path), "--checkpoint", str(run / "best.pt")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for engine in ("ort", "numba", "fast"):  # 4 shapes x (logits, probs) each
        assert f"{engine} vs torch: 8 comparisons" in ok.stdout
    other = tmp_path / "other"
    train_series(other, data=path.parent / "toy_TRAIN.ts", hidden_size=8, epochs=2, seed=5,
                 threads=1, device="cpu", echo=None)
    bad = subprocess.run([*cli(), "verify", str(path), "--checkpoint", str(other / "best.pt")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "vs torch" in bad.stdout and "FAIL" in bad.stdout
    timed = subprocess.run([*cli(), "bench", str(path), "--checkpoint", str(run / "best.pt")],
                           capture_output=True, text=True)
    assert timed.returncode != 0 and "without --checkpoint" in timed.stderr
