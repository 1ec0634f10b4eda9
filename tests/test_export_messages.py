"""What ``rnnedge export`` tells a user: ambiguous dtypes refused, a missing PyTorch named in one
line, and the exporters' own warnings kept off the terminal unless ``--verbose``."""

import os
import subprocess
import sys

import pytest

from rnnedge.export.user_spec import DTYPES, parse_input_spec
from rnnedge.runtime.errors import InputError

CLI = [sys.executable, "-m", "rnnedge.cli"]
TAGGER = '''
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 3)

    def forward(self, feats, lengths):
        packed = pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])
        return self.head(out)


def make():
    torch.manual_seed(0)
    return Tagger()
'''
TAGGER_ARGS = ["--input", "feats:float32[batch,time,4]", "--input", "lengths:int64[batch]",
               "--lengths", "lengths", "--output", "tags"]
# torch's C++ shape inference warns about packed sequences, straight to file descriptor 2
PACKED_WARNING = "The shape inference of prim::PackPadded type is missing"


@pytest.fixture()
def tagger(tmp_path):
    path = tmp_path / "tagger.py"
    path.write_text(TAGGER)
    return f"{path}:make"


def shim_env(tmp_path, module):
    """An environment where ``import MODULE`` fails as it does when it is not installed."""
    shim = tmp_path / f"no_{module}"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] == {module!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    check = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True,
                           text=True)
    assert f"No module named '{module}'" in check.stderr  # the shim really works
    return env


# -- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, hint", [("float", "float32 (torch's float) or float64 (numpy's)"),
                                         ("int", "int64 or int32"), ("long", "int64 or int32")])
def test_an_ambiguous_dtype_is_refused_with_the_accepted_names(dtype, hint):
    with pytest.raises(InputError) as refused:
        parse_input_spec(f"x:{dtype}[batch,time,4]")
    message = str(refused.value)
    assert f"dtype '{dtype}' is ambiguous; write {hint}" in message
    assert "accepted: float32, float16, float64, int64, int32" in message


def test_explicit_dtypes_parse_to_themselves():
    assert [parse_input_spec(f"x:{d}[batch,time]")[1] for d in DTYPES] == list(DTYPES)
    assert parse_input_spec("x:double[batch,time]")[1] == "float64"  # one width to numpy and torch
    with pytest.raises(InputError, match="unknown dtype 'float33'; accepted: float32"):
        parse_input_spec("x:float33[batch]")


def test_the_command_refuses_float_in_one_line(tagger, tmp_path):
    done = subprocess.run([*CLI, "export", "--model", tagger, "--input", "feats:float[batch,time,4]",
                           "--output", "tags", "--out", str(tmp_path / "t.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "dtype 'float' is ambiguous" in done.stderr and not (tmp_path / "t.onnx").exists()


# -- without torch ----------------------------------------------------------------------------

TRAIN_EXTRA = ("needs PyTorch: pip install 'rnnedge[train]' (or torch's CPU build first: pip "
               "install torch --index-url https://download.pytorch.org/whl/cpu)")


@pytest.mark.parametrize("command", ["export-checkpoint", "export-model", "train"])
def test_commands_that_need_torch_say_so_in_one_line(command, tagger, tmp_path):
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"not read: torch is missing first")
    args = {"export-checkpoint": ["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")],
            "export-model": ["export", "--model", tagger, *TAGGER_ARGS, "--out",
                             str(tmp_path / "m.onnx")],
            "train": ["train", "charlm", "--out", str(tmp_path / "run")]}[command]
    done = subprocess.run([*CLI, *args], capture_output=True, text=True,
                          env=shim_env(tmp_path, "torch"))
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"rnnedge: error: rnnedge {args[0]} {TRAIN_EXTRA}\n"
    assert not (tmp_path / "m.onnx").exists()


# -- the exporters' own warnings ------------------------------------------------------------

def test_exporter_warnings_are_counted_not_shown(tagger, tmp_path):
    out = tmp_path / "tagger.onnx"
    done = subprocess.run([*CLI, "export", "--model", tagger, *TAGGER_ARGS, "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert PACKED_WARNING not in done.stderr + done.stdout and "Warning" not in done.stderr
    last = done.stdout.splitlines()[-1]
    count = int(last.split()[0])
    assert count >= 2 and last == f"{count} exporter warnings hidden (--verbose shows them)"
    shown = subprocess.run([*CLI, "export", "--model", tagger, *TAGGER_ARGS, "--out", str(out),
                            "--verbose"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert PACKED_WARNING in shown.stderr and len(shown.stderr.splitlines()) == count
    assert "hidden" not in shown.stdout


def test_the_api_hands_the_exporters_output_back(tmp_path, capfd):
    import importlib.util

    from rnnedge.export.user_spec import example_from_specs
    from rnnedge.export.user_model import export_model

    (tmp_path / "tagger.py").write_text(TAGGER)
    spec = importlib.util.spec_from_file_location("tagger_for_api", tmp_path / "tagger.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    specs = [parse_input_spec("feats:float32[batch,time,4]"), parse_input_spec("lengths:int64[batch]")]
    example, axes = example_from_specs(specs, lengths="lengths")
    capfd.readouterr()
    report = export_model(module.make(), example, tmp_path / "t.onnx", input_names=["feats", "lengths"],
                          output_names=["tags"], dynamic_axes={**axes, "tags": {0: "batch", 1: "time"}},
                          lengths="lengths")
    assert any(PACKED_WARNING in line for line in report.exporter_output)
    assert PACKED_WARNING not in capfd.readouterr().err


def test_native_writes_to_the_descriptors_are_captured(capfd):
    from rnnedge.export.user_model import exporter_output

    with exporter_output() as lines:
        os.write(2, b"[W] native warning\n")
        os.write(1, b"native chatter\n")
        with exporter_output() as inner:  # nested: the same list
            import warnings

            warnings.warn("from python", UserWarning)
    assert inner is lines
    assert lines == ["UserWarning: from python", "[W] native warning", "native chatter"]
    seen = capfd.readouterr()
    assert "native" not in seen.out + seen.err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # the descriptors are back
