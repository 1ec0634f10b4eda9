#!/usr/bin/env bash
# The prepared GPU check: from a fresh copy of the working tree on a CUDA machine, in under
# eight minutes, train each workload for a short fixed budget on CUDA (fp32, bf16; fp16 for
# one) and on the CPU, report samples/s, export, verify, and write the results as JSON.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine (results in $OUT or ./gpu_results)
#   bash benchmarks/gpu_check.sh --cpu-only   # here: the existing .venv, no install, tiny budgets
#   bash benchmarks/gpu_check.sh --minutes 0.1  # flags after the mode go to gpu_check.py
#
# A failed step is recorded (steps.jsonl, then gpu_check.json) and the check goes on; the
# exit code is 1 when any step failed. The steps themselves are in benchmarks/gpu_check.py.
set -euo pipefail

cd "$(dirname "$0")/.."
export GPU_CHECK_START="${GPU_CHECK_START:-$(date +%s)}"  # gpu_check.py starts no run after +7 min
OUT="${OUT:-$PWD/gpu_results}"
mkdir -p "$OUT"
STEPS="$OUT/steps.jsonl"
: > "$STEPS"
MODE=gpu
if [[ "${1:-}" == "--cpu-only" ]]; then MODE=cpu-only; shift; fi  # the rest goes to gpu_check.py
VENV="${VENV:-$([[ $MODE == cpu-only ]] && echo .venv || echo runs/gpu-venv)}"  # runs/ is ignored by git
PY="$VENV/bin/python"

# step NAME COMMAND...: run it, time it, log it under $OUT, record {"step", "ok", "rc", "seconds"}
step() {
  local name="$1"; shift
  local start rc
  start=$(date +%s.%N)
  echo "== $name" >&2
  set +e
  "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  set -e
  local seconds
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '{"step": "%s", "ok": %s, "rc": %d, "seconds": %s}\n' "$name" \
    "$([[ $rc == 0 ]] && echo true || echo false)" "$rc" "$seconds" >> "$STEPS"
  if [[ $rc != 0 ]]; then tail -n 5 "$OUT/$name.log" >&2; fi
  return 0
}

if [[ $MODE == gpu ]]; then
  # A system torch that sees the GPU is used as it is (a venv with system packages); else the
  # default PyPI wheel, which is the CUDA build.
  step venv python3 -m venv --system-site-packages "$VENV"
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    step install-torch "$PY" -m pip install -q --disable-pip-version-check torch
  fi
  step install-project "$PY" -m pip install -q --disable-pip-version-check -e ".[train,dev]"
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$([[ $MODE == cpu-only ]] && echo 1 || echo 8)}"
rm -f "$OUT/gpu_check.json"
set +e
"$PY" benchmarks/gpu_check.py --mode "$MODE" --out "$OUT" --steps "$STEPS" "$@"
rc=$?
set -e
if [[ ! -f "$OUT/gpu_check.json" ]]; then
  # gpu_check.py could not run at all (no venv, no torch): still leave a JSON behind
  printf '{"mode": "%s", "ok": false, "error": "benchmarks/gpu_check.py exited %d before its report", "install_steps": [%s]}\n' \
    "$MODE" "$rc" "$(paste -sd, "$STEPS")" > "$OUT/gpu_check.json"
fi
exit "$rc"
