#!/usr/bin/env bash
# The check for a machine with an NVIDIA GPU: the suite's cupy, torch-cuda and jax-cuda cases
# (XPNN_TEST_REQUIRE names them and XPNN_TEST_EXPECTED_SKIPS is empty, so any skip fails),
# scripts/eval.py --json on each GPU backend (the report's device must be cuda, the score
# 9352/10000), and bench.py --gpu --quick. Each step runs in its own process with a time limit.
# Exit 0 only if every step ran and passed; without a visible GPU nothing runs and it exits 1.
#   bash scripts/gpu_check.sh          # every step
#   bash scripts/gpu_check.sh --list   # NAME|SECONDS|COMMAND, one step a line
# GPU_CHECK_STEPS=FILE replaces the steps by FILE's lines (how the tests drive it on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python}
tests="env XPNN_TEST_EXPECTED_SKIPS= $py -m pytest -q -p no:cacheprovider -k cuda"
eval_on() {  # eval_on BACKEND: the main job on its GPU, device and score checked
    $py scripts/eval.py --backend "$1" --device cuda --json | $py -c '
import json, sys
r = json.load(sys.stdin)
got = (str(r["device"]).split(":")[0], r["correct"], r["n"])
sys.exit(0 if got == ("cuda", 9352, 10000) else f"eval {sys.argv[1]}: device, score {got}")' "$1"
}
steps=(
    "tests cupy|540|XPNN_TEST_REQUIRE=cupy $tests --backend cupy"
    "tests torch-cuda|540|XPNN_TEST_REQUIRE=torch-cuda $tests --backend torch-cuda"
    "tests jax-cuda|540|XPNN_TEST_REQUIRE=jax-cuda $tests --backend jax-cuda"
    "eval cupy|300|eval_on cupy"
    "eval torch-cuda|300|eval_on torch"
    "eval jax-cuda|300|eval_on jax"
    "bench --gpu --quick|600|$py scripts/bench.py --gpu --quick"
)
if [[ -n ${GPU_CHECK_STEPS:-} ]]; then mapfile -t steps < "$GPU_CHECK_STEPS"; fi
if [[ ${1:-} == --list ]]; then printf '%s\n' "${steps[@]}"; exit 0; fi
[[ $# -eq 0 ]] || { echo "usage: bash scripts/gpu_check.sh [--list]" >&2; exit 2; }
export -f eval_on
export py
results=() status=0
gpus=$(nvidia-smi -L 2>&1) && grep -q '^GPU ' <<< "$gpus" || no_gpu="${gpus:-no output}"
for step in "${steps[@]}"; do
    IFS='|' read -r name limit command <<< "$step"
    if [[ -n ${no_gpu:-} ]]; then
        results+=("$name|NOT RUN (no NVIDIA GPU visible)") status=1
        continue
    fi
    echo "=== $name: $command"
    timeout --kill-after=10 "$limit" bash -c "$command"
    code=$?
    if [[ $code -eq 0 ]]; then results+=("$name|ok"); else results+=("$name|FAILED (exit $code)") status=1; fi
done
[[ -z ${no_gpu:-} ]] || echo "gpu_check: nvidia-smi -L: $no_gpu"
echo "=== summary"
for row in "${results[@]}"; do printf '  %-32s %s\n' "${row%%|*}" "${row#*|}"; done
exit "$status"
