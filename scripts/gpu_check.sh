#!/usr/bin/env bash
# The check to run once on a machine with an NVIDIA GPU. It exits 0 only if every step ran and
# passed; a step that fails, times out or cannot run makes it exit 1, and the summary names it.
#
# Steps (each in its own process; the whole run is capped at GPU_CHECK_BUDGET_S, default 540 s,
# so it fits in 10 minutes; steps the budget does not reach are reported NOT RUN):
#   1. pytest on the cupy and torch-cuda cases, selected with --backend (no -k), required by
#      XPNN_TEST_REQUIRE; only the tests that use the backend fixture, and any skip fails
#      (JAX_PLATFORMS=cpu there, so JAX never starts CUDA next to torch).
#   2. the same for jax-cuda, in a process where JAX starts its GPU backend first (before anything
#      else loads CUDA libraries), prints jax.devices() and fails on a CPU fallback;
#      XLA_PYTHON_CLIENT_PREALLOCATE=false so JAX does not take 75% of the GPU memory.
#   3. scripts/eval.py --json on cupy, torch-cuda and jax-cuda: "device" in the report must name
#      a CUDA device; float32 must get 9352 right (on JAX both with its default matmul precision
#      and with JAX_DEFAULT_MATMUL_PRECISION=highest), float16 9354.
#   4. xd.classify + xd.confusion on a dask array of CuPy chunks (9352 of 10000, labels on the GPU).
#   5. scripts/bench.py --gpu --quick (it exits non-zero when it measured nothing).
#   6. the full test suite once: every CPU case and every test that does not use the backend
#      fixture, with the GPU visible (JAX_PLATFORMS=cpu, as in step 1).
# Without a visible NVIDIA GPU (nvidia-smi -L lists none) nothing runs: every step is NOT RUN
# and the script exits 1 at once.
#
# What the GPU machine's Python must have: numpy, cupy, torch, jax (CUDA builds), dask[array],
# pytest, hypothesis, pooch, safetensors, tqdm, psutil. Anything missing travels as wheels in the
# ignored .whl/ folder and the data in the ignored .gpu-data/ folder; no pip is needed there: a
# wheel is a zip, and each one whose distribution is not installed is unzipped into a temporary
# directory put first on PYTHONPATH (a wheel with compiled code must match that machine's Python
# and platform; the script refuses one that does not). Fill both from the repository root, on a
# machine with pip, for the GPU machine's Python version (3.12 in this example):
#
#   echo /.whl/ >> .git/info/exclude; echo /.gpu-data/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       array-api-compat array-api-strict matplotlib contourpy cycler fonttools kiwisolver \
#       pillow pyparsing python-dateutil six packaging
#   mkdir -p .gpu-data && cp ../shared/data/mnist/*.gz ../shared/data/weights/*.pkl .gpu-data/
#
# (matplotlib is for tests/test_plot.py; numpy is never carried: the GPU libraries are built
# against the machine's own.) Then run `bash scripts/gpu_check.sh` there, carrying .whl and
# .gpu-data.
#
# `bash scripts/gpu_check.sh --list` prints the steps, "NAME|LIMIT_S|COMMAND", and runs nothing.
# `--only "eval cupy,dask"` reruns the steps whose names contain one of those words (after a
# failure, within the remaining time); its summary says it was a partial run.
# Testing this script without a GPU: GPU_CHECK_STEPS=FILE replaces the steps by the lines of
# FILE in that format (COMMAND runs with bash -c) and skips the GPU probe; the same runner,
# budget, summary and exit status apply (tests/test_gpu_check.py does this).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
START=$SECONDS

names=() limits=() commands=() results=() partial=""
add_step() {  # add_step NAME LIMIT_S COMMAND
  names+=("$1") limits+=("$2") commands+=("$3")
}

summary() {
  local failed=0 i
  echo "=== summary (${partial:-${#names[@]} steps}, $((SECONDS - START)) s)"
  for i in "${!names[@]}"; do
    printf '  %-32s %s\n' "${names[$i]}" "${results[$i]:-NOT RUN (interrupted)}"
    [[ ${results[$i]:-} == ok* ]] || failed=1
  done
  if ((failed)); then
    echo "gpu_check: FAILED: the steps above that are not 'ok' failed or could not run"
    return 1
  fi
  echo "gpu_check: every step ran and passed${partial:+ ($partial)}"
}

child=""
interrupted() {
  [[ -n $child ]] && kill -TERM "$child" 2> /dev/null  # timeout passes it to the whole step
  echo
  echo "gpu_check: interrupted"
  summary
  exit 130
}
trap interrupted INT TERM

if [[ -n ${GPU_CHECK_STEPS:-} ]]; then
  while IFS='|' read -r name limit command; do
    [[ -z $name || $name == \#* ]] && continue
    add_step "$name" "$limit" "$command"
  done < "$GPU_CHECK_STEPS"
  gpu_reason=""
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/xpnn-gpu-check.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  export PYTHONPATH="$PWD/scripts:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export XPNN_DATA_DIR="${XPNN_DATA_DIR:-$PWD/.gpu-data}" XPNN_REQUIRE_DATA=1 XPNN_OFFLINE=1
  unset XPNN_BACKEND XPNN_TEST_BACKENDS
  steps="$PY scripts/gpu_check_steps.py"
  gpu_env="env XLA_PYTHON_CLIENT_PREALLOCATE=false"
  no_jax_gpu="env JAX_PLATFORMS=cpu"
  pytest_args="-q -rs -p no:cacheprovider -p gpu_check_steps tests"

  add_step "pytest cupy + torch-cuda" 150 \
    "$no_jax_gpu XPNN_TEST_REQUIRE=cupy,torch-cuda $PY -m pytest $pytest_args \
     --backend cupy --backend torch-cuda"
  add_step "pytest jax-cuda" 150 \
    "$gpu_env XPNN_TEST_REQUIRE=jax-cuda $steps jax-pytest -- $pytest_args --backend jax-cuda"
  eval_step() {  # eval_step NAME CORRECT ENV... -- EVAL ARGS...
    local name=$1 correct=$2 env_args=()
    shift 2
    while [[ $1 != -- ]]; do env_args+=("$1"); shift; done
    shift
    add_step "$name" 60 "env ${env_args[*]} $PY scripts/eval.py --json $* > \"$tmp/report.json\" \
      && $steps check-report --correct $correct --device cuda < \"$tmp/report.json\""
  }
  eval_step "eval cupy float32" 9352 JAX_PLATFORMS=cpu -- --backend cupy
  eval_step "eval cupy float16" 9354 JAX_PLATFORMS=cpu -- --backend cupy --dtype float16
  eval_step "eval torch-cuda float32" 9352 JAX_PLATFORMS=cpu -- --backend torch --device cuda
  eval_step "eval torch-cuda float16" 9354 JAX_PLATFORMS=cpu -- --backend torch --device cuda \
    --dtype float16
  eval_step "eval jax-cuda float32" 9352 XLA_PYTHON_CLIENT_PREALLOCATE=false -- --backend jax \
    --device cuda
  eval_step "eval jax-cuda float32 highest" 9352 XLA_PYTHON_CLIENT_PREALLOCATE=false \
    JAX_DEFAULT_MATMUL_PRECISION=highest -- --backend jax --device cuda
  eval_step "eval jax-cuda float16" 9354 XLA_PYTHON_CLIENT_PREALLOCATE=false -- --backend jax \
    --device cuda --dtype float16
  add_step "dask array of CuPy chunks" 90 "$no_jax_gpu $steps dask-cupy"
  add_step "bench.py --gpu --quick" 120 "$no_jax_gpu $PY scripts/bench.py --gpu --quick"
  add_step "full suite (CPU cases)" 320 \
    "$no_jax_gpu XPNN_TEST_REQUIRE=numpy,array_api_strict,torch,jax,dask $PY -m pytest -q -rs \
     -p no:cacheprovider --backend numpy-cpu --backend array_api_strict-cpu \
     --backend array_api_strict-device1 --backend torch-cpu --backend jax-cpu --backend dask-cpu"
fi

if [[ ${1:-} == --list && $# == 1 ]]; then
  for i in "${!names[@]}"; do
    echo "${names[$i]}|${limits[$i]}|${commands[$i]//$'\n'/ }"
  done
  exit 0
elif [[ ${1:-} == --only && -n ${2:-} && $# == 2 ]]; then
  IFS=, read -ra wanted <<< "$2"
  total=${#names[@]}
  kept_names=() kept_limits=() kept_commands=()
  for i in "${!names[@]}"; do
    for word in "${wanted[@]}"; do
      if [[ -n $word && ${names[$i]} == *"$word"* ]]; then
        kept_names+=("${names[$i]}") kept_limits+=("${limits[$i]}")
        kept_commands+=("${commands[$i]}")
        break
      fi
    done
  done
  if ((${#kept_names[@]} == 0)); then
    echo "gpu_check: --only $2 matches no step (see --list)" >&2
    exit 2
  fi
  names=("${kept_names[@]}") limits=("${kept_limits[@]}") commands=("${kept_commands[@]}")
  partial="partial run, ${#names[@]} of $total steps"
elif [[ -n ${1:-} ]]; then
  echo "usage: bash scripts/gpu_check.sh [--list | --only NAME,...]" >&2
  exit 2
fi

if [[ -z ${GPU_CHECK_STEPS:-} ]]; then
  # The GPU probe: fast, so that a machine without one fails at once.
  if ! gpus=$(nvidia-smi -L 2>&1) || ! grep -q '^GPU ' <<< "$gpus"; then
    gpu_reason="no NVIDIA GPU visible"
    echo "gpu_check: nvidia-smi -L: ${gpus:-no output}"
  else
    gpu_reason=""
    echo "$gpus"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    shopt -s nullglob
    wheels=(.whl/*.whl)
    if ((${#wheels[@]})); then
      echo "=== carrying ${#wheels[@]} wheel(s) from .whl/"
      if ! $steps carry-wheels "$tmp/site" "${wheels[@]}"; then
        gpu_reason="a wheel in .whl/ does not fit this Python or platform"
      fi
      export PYTHONPATH="$tmp/site:$PYTHONPATH"
    fi
    # Versions only: importing torch here is harmless (this process starts no CUDA).
    "$PY" -c "import numpy, cupy, torch, jax; print('numpy', numpy.__version__, \
'| cupy', cupy.__version__, '| torch', torch.__version__, '| jax', jax.__version__)" \
      || echo "gpu_check: a GPU library is missing; the steps that need it will fail"
  fi
fi

[[ -n $gpu_reason ]] && echo "gpu_check: $gpu_reason, so no step can run"
for i in "${!names[@]}"; do
  if [[ -n $gpu_reason ]]; then
    results[i]="NOT RUN ($gpu_reason)"
    continue
  fi
  left=$((BUDGET - (SECONDS - START)))
  limit=${limits[$i]}
  if ((left < 5)); then
    results[i]="NOT RUN (time budget of ${BUDGET} s spent)"
    continue
  fi
  ((limit > left)) && limit=$left
  echo "=== ${names[$i]} (limit $limit s)"
  began=$SECONDS
  # In the background so that Ctrl-C reaches the trap at once (wait is interruptible).
  timeout -k 10 "$limit" bash -c "${commands[$i]}" &
  child=$!
  wait "$child"
  rc=$?
  child=""
  took=$((SECONDS - began))
  case $rc in
    0) results[i]="ok ($took s)" ;;
    124 | 137) results[i]="TIMED OUT (after $took s)" ;;
    *) results[i]="FAILED (exit $rc, $took s)" ;;
  esac
done

summary
