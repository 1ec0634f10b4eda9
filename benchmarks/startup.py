"""Start-up and memory of the on-device commands, each in a fresh process with torch blocked.

Time from spawning ``rnnedge generate`` / ``rnnedge classify`` to the first byte of their
output and to their exit, and peak resident memory (VmHWM), on onnxruntime and on the fast
engines with a warm numba cache and an empty one (the first call after an install); and the
import time of each runtime dependency. Not here: steady-state latency (``suite.py``).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

TORCH_BLOCKER = "raise ImportError('torch is blocked: this measures the runtime alone')\n"
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec from the parent
PROBE = """
import atexit, sys
def report():
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    sys.stderr.write("rnnedge-probe maxrss_kb=%d torch=%d\\n" % (hwm, "torch" in sys.modules))
atexit.register(report)
sys.argv = ["rnnedge"] + sys.argv[1:]
from rnnedge.cli import main
main()
"""


def run_probe(args, env):
    """(seconds from spawn to the first byte of stdout, seconds to exit, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PROBE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = proc.stdout.read(1)
    t_first = time.perf_counter() - t0
    rest, err = proc.communicate()
    t_exit = time.perf_counter() - t0
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"rnnedge {' '.join(args)} failed: {err.decode()[-500:]}")
    line = next(ln for ln in err.decode().splitlines() if ln.startswith("rnnedge-probe"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    if fields["torch"] != "0":
        raise RuntimeError(f"rnnedge {' '.join(args)} imported torch")
    return t_first, t_exit, int(fields["maxrss_kb"]) / 1024


def run_bare(env):
    """(seconds, seconds, NaN) of ``python -c pass``: the interpreter alone, no memory probe."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    return (time.perf_counter() - t0,) * 2 + (float("nan"),)


def blocked_env(work):
    """The environment of a process in which ``import torch`` fails."""
    blocker = work / "no-torch" / "torch"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text(TORCH_BLOCKER)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(blocker.parent), os.environ.get("PYTHONPATH")) if p))


def startup(charlm, sentiment, repeats, work):
    """Process start to first output and peak RSS of runtime commands, torch blocked."""
    env = blocked_env(work)
    generate = ["generate", str(charlm), "--prompt", "The ", "--length", "1", "--seed", "0"]
    cases = {
        "python -c pass (interpreter alone)": None,
        "rnnedge generate, ort": generate,
        "rnnedge generate, fast (warm numba cache)": [*generate, "--engine", "fast"],
        "rnnedge generate, fast-int8 (warm numba cache)": [*generate, "--engine", "fast-int8"],
        "rnnedge classify, ort": ["classify", str(sentiment), "A moving, funny film."],
    }
    rows = [_row(name, [run_bare(env) if args is None else run_probe(args, env)
                        for _ in range(repeats)])
            for name, args in cases.items()]
    for engine in ("fast", "fast-int8"):  # an empty cache: the first call after an install
        runs = []
        for _ in range(max(1, repeats // 2)):
            with tempfile.TemporaryDirectory() as cache:
                runs.append(run_probe([*generate, "--engine", engine],
                                      dict(env, NUMBA_CACHE_DIR=cache)))
        rows.append(_row(f"rnnedge generate, {engine} (empty numba cache)", runs))
    return rows


def _row(name, runs):
    first, done, rss = zip(*runs)
    return {"case": name, "first_output_s": statistics.median(first),
            "exit_s": statistics.median(done), "peak_rss_mb": statistics.median(rss), "runs": len(runs)}


def import_profile():
    """Seconds to import the runtime's pieces, each in a fresh interpreter."""
    rows = {}
    for module in ("numpy", "onnx", "onnxruntime", "numba", "typer", "rnnedge.cli"):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows[module] = float(out.stdout)
    return rows
