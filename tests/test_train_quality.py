"""The demo's quality check: a preset's [expect] band, parsed on purpose, and the line that
compares the best epoch with it, a warning (exit 0) when the model came out undertrained."""

import subprocess
import sys

import pytest

from rnnedge.runtime.errors import InputError
from rnnedge.train.config import CharLMConfig, CharTrainConfig, gather, load_preset
from rnnedge.train.expect import judge, load_bands

BPC = ("val_bpc",)


def preset(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_the_band_is_read_apart_from_the_settings(tmp_path):
    path = preset(tmp_path, 'hidden_size = 64\n\n[expect]\nval_bpc_max = 2.6\n')
    assert gather(CharLMConfig, CharTrainConfig, path) == ({"hidden_size": 64}, {})
    [band] = load_bands(path, BPC)
    assert (band.key, band.bound, str(band)) == ("val_bpc_max", 2.6, "<= 2.6")
    assert load_bands(None, BPC) == [] and load_bands(preset(tmp_path, "lr = 0.1\n"), BPC) == []


@pytest.mark.parametrize("text, message", [
    ("[expect]\nval_bpc_mx = 2.6\n",
     r"\[expect\] val_bpc_mx is not a band of this task; it takes val_bpc_max"),
    ("[expect]\nval_accuracy_min = 0.8\n", r"val_accuracy_min is not a band of this task"),
    ('[expect]\nval_bpc_max = "low"\n', r"val_bpc_max must be a number in \(0, inf\], not 'low'"),
    ("[expect]\nval_bpc_max = true\n", r"val_bpc_max must be a number"),
    ("[expect]\nval_bpc_max = -1\n", r"val_bpc_max must be a number in \(0, inf\], not -1"),
])
def test_a_bad_band_is_a_typed_error(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_bands(preset(tmp_path, text), BPC)


def test_an_accuracy_band_is_a_fraction(tmp_path):
    with pytest.raises(InputError, match=r"val_accuracy_min must be a number in \(0, 1\], not 85"):
        load_bands(preset(tmp_path, "[expect]\nval_accuracy_min = 85\n"), ("val_acc",))


def test_other_tables_and_unknown_keys_are_still_refused(tmp_path):
    with pytest.raises(InputError, match=r"tables \[model\] are not settings"):
        load_preset(preset(tmp_path, "[expect]\nval_bpc_max = 2.6\n[model]\nhidden_size = 3\n"))
    with pytest.raises(InputError, match="unknown setting.*expect"):
        gather(CharLMConfig, CharTrainConfig, preset(tmp_path, "expect = 2.6\n"))


def bands(tmp_path, text="[expect]\nval_bpc_max = 2.6\n"):
    return load_bands(preset(tmp_path, text), BPC)


def test_a_model_within_its_band_says_so(tmp_path):
    record = judge(bands(tmp_path), {"val_bpc": 2.301, "stopped": "budget"}, [{"epoch": 29}], 40, 3)
    assert record["ok"] and record["line"] == (
        f"quality: 2.301 bits/char, within the band of {tmp_path / 'p.toml'} (<= 2.6)")
    assert judge([], {"val_bpc": 9.0, "stopped": "epochs"}, [{"epoch": 1}], 1, None) is None


@pytest.mark.parametrize("stopped, last, cause", [
    ("budget", {"epoch": 1, "partial": True, "steps": 120, "steps_total": 310},
     "the time budget of 3 min ran out in epoch 1 at step 120/310; rerun with more --max-minutes"),
    ("budget", {"epoch": 2, "partial": False},
     "the time budget of 3 min ran out after 2 of 40 epochs"),
    ("early", {"epoch": 5}, "validation stopped improving and training stopped early after "
                            "epoch 5 of 40"),
    ("epochs", {"epoch": 40}, "all 40 epochs ran"),
])
def test_an_undertrained_model_is_a_warning_that_names_the_likely_cause(tmp_path, stopped, last,
                                                                        cause):
    record = judge(bands(tmp_path), {"val_bpc": 3.89, "stopped": stopped}, [last], 40, 3)
    assert not record["ok"] and record["checks"][0]["value"] == 3.89
    assert record["line"].startswith("WARNING: undertrained: 3.890 bits/char, the band of ")
    assert "is <= 2.6 (" + cause in record["line"]


def test_the_command_warns_last_and_still_succeeds(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("To be, or not to be, that is the question. " * 200)
    path = preset(tmp_path, "hidden_size = 8\nembed_dim = 4\nnum_layers = 1\n\n"
                            "[expect]\nval_bpc_max = 0.01\n")
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "train", "charlm", "--out",
                           str(tmp_path / "run"), "--text", str(text), "--config", str(path),
                           "--epochs", "1", "--batch-size", "4", "--num-steps", "20",
                           "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith("WARNING: undertrained: ")
    assert "all 1 epoch ran" in done.stderr.splitlines()[-1]
    assert done.stdout.splitlines()[-1].startswith("best epoch 1: validation ")
