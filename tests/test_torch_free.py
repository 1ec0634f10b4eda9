"""The on-device path works where ``import torch`` fails: CLI and Python API, real output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnnedge.runtime as rt

API_SCRIPT = """
import sys, json
import rnnedge.runtime as rt
model = rt.load(sys.argv[1], engine=sys.argv[2])
stream = model.stream()
logits = stream.step("Ham")
print(json.dumps({"text": model.generate("The ", 40, seed=3), "shape": list(logits.shape),
                  "torch": "torch" in sys.modules and sys.modules["torch"] is not None}))
"""


@pytest.fixture()
def no_torch_env(tmp_path):
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")]))
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert "torch is blocked" in check.stderr  # the blocker really works
    return env


def _cli():
    script = Path(sys.executable).parent / "rnnedge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnnedge.cli"]


def test_generate_and_info_commands_run_without_torch(charlm, no_torch_env):
    gen = subprocess.run([*_cli(), "generate", str(charlm[1]), "--prompt", "The ", "--length", "60",
                          "--seed", "3"], env=no_torch_env, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.rstrip("\n") == rt.load(charlm[1]).generate("The ", 60, seed=3)
    info = subprocess.run([*_cli(), "info", str(charlm[1]), "--json"], env=no_torch_env,
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["kind"] == "charlm" and report["config"]["num_layers"] == 2
    assert [i["name"] for i in report["signature"]["inputs"]] == ["tokens", "h0", "c0"]


@pytest.mark.parametrize("engine", ["ort", "numba"])
def test_python_api_runs_without_torch(charlm, no_torch_env, engine):
    done = subprocess.run([sys.executable, "-c", API_SCRIPT, str(charlm[1]), engine],
                          env=no_torch_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["text"] == rt.load(charlm[1]).generate("The ", 40, seed=3)
    assert out["shape"] == [3, 65] and out["torch"] is False


def test_verify_without_torch_compares_the_runtime_engines(charlm, no_torch_env):
    done = subprocess.run([*_cli(), "verify", str(charlm[1]), "--checkpoint", str(charlm[0])],
                          env=no_torch_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch is not installed" in done.stderr and "numba vs ort" in done.stdout
    assert "torch" not in done.stdout
