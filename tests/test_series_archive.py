"""Other files of the UEA/UCR archive through the same commands, unchanged.

Each case is a small synthetic ``.ts`` file written here in one of the archive's shapes:
univariate of equal length, multivariate of variable length with missing values and string
labels, and a long series (400 frames). Each goes through ``train series``, ``export``,
``verify`` (PyTorch, onnxruntime, the numba reference and the fast engines agree) and
``evaluate`` by command, as Japanese Vowels does. Data-free.
"""

import json

import numpy as np
import pytest

from test_series import run_cli, write_ts


def rows(n, channels, lengths, labels, seed, missing=False):
    """Cases whose class is the sign of their mean (3 std apart); ``?`` for a few values."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        label = labels[k % len(labels)]
        T = int(rng.integers(*lengths)) if lengths[0] != lengths[1] else lengths[0]
        x = rng.standard_normal((channels, T)) + (1.5 if k % len(labels) == 0 else -1.5)
        cells = [[f"{v:.4f}" for v in ch] for ch in x]
        if missing and k % 5 == 0:
            cells[0][T // 2] = "?"
        out.append(":".join(",".join(ch) for ch in cells) + f":{label}")
    return out


ARCHIVE = {
    "univariate-equal": dict(channels=1, lengths=(24, 24), labels=("1", "2"),
                             header=dict(uni=True, equal=True, length=24)),
    "multivariate-variable-missing": dict(channels=3, lengths=(5, 30), labels=("up", "down"),
                                          missing=True, header=dict(dims=3, missing=True)),
    "long": dict(channels=2, lengths=(400, 400), labels=("a", "b"),
                 header=dict(dims=2, equal=True, length=400)),
}


@pytest.mark.parametrize("kind", list(ARCHIVE))
def test_an_archive_file_goes_through_every_command(kind, tmp_path):
    spec = ARCHIVE[kind]
    labels = "true " + " ".join(spec["labels"])
    made = {}
    for split, n, seed in (("TRAIN", 40, 0), ("TEST", 20, 1)):
        made[split] = write_ts(tmp_path / f"{kind}_{split}.ts",
                               rows(n, spec["channels"], spec["lengths"], spec["labels"], seed,
                                    spec.get("missing", False)),
                               labels=labels, **spec["header"])
    run = tmp_path / "run"
    policy = ["--missing", "interpolate"] if spec.get("missing") else []
    out = run_cli("train", "series", "--data", made["TRAIN"], "--test", made["TEST"], "--out", run,
                  "--epochs", 15, "--hidden-size", 8, "--threads", 1, "--device", "cpu", *policy)
    assert "test" in out.lower()
    model = tmp_path / "model.onnx"
    run_cli("export", run / "best.pt", "--out", model)
    verified = run_cli("verify", model, "--checkpoint", run / "best.pt")
    assert "FAIL" not in verified
    result = json.loads(run_cli("evaluate", model, "--data", made["TEST"], "--json", *policy))
    assert result["n"] == 20 and sorted(result["classes"]) == sorted(spec["labels"])
    assert np.array(result["confusion"]).sum() == 20
    assert result["accuracy"] >= 0.8  # the two classes are 3 standard deviations apart
