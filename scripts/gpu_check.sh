#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU (under 5 minutes): the backend tests on
# cupy, torch-cuda and jax-cuda, the main job on cupy, and the GPU benchmark; one summary.
#
# That machine's Python must already have numpy, cupy, torch and jax (and pytest, hypothesis,
# safetensors). What it lacks travels as wheels in the ignored .whl/ folder, and the data in
# the ignored .gpu-data/ folder. Fill both, from the repository root, on a machine with pip:
#
#   echo /.whl/ >> .git/info/exclude; echo /.gpu-data/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       array-api-compat==1.16.0 array-api-strict==2.6.1
#   mkdir -p .gpu-data && cp ../shared/data/mnist/*.gz ../shared/data/weights/*.pkl .gpu-data/
#
# then run `bash scripts/gpu_check.sh` there, carrying .whl and .gpu-data.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/xpnn-site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/xpnn-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export XPNN_DATA_DIR="${XPNN_DATA_DIR:-$PWD/.gpu-data}" XPNN_REQUIRE_DATA=1 XPNN_OFFLINE=1

status=()
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  status+=("$name: exit $rc in $((SECONDS - start)) s")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import numpy, cupy, torch, jax; print('numpy', numpy.__version__, '| cupy', cupy.__version__, '| torch', torch.__version__, '| jax', jax.__version__, jax.devices())"

step "backend tests (cupy, torch-cuda, jax-cuda)" 150 env XPNN_TEST_REQUIRE=cupy,torch-cuda,jax-cuda \
  "$PY" -m pytest -q -rs -p no:cacheprovider --backend cupy --backend torch-cuda --backend jax-cuda \
  -k "cupy or cuda" tests
step "XPNN_BACKEND=cupy scripts/eval.py --json" 60 env XPNN_BACKEND=cupy "$PY" scripts/eval.py --json
step "XPNN_BACKEND=torch --device cuda scripts/eval.py --quiet" 60 env XPNN_BACKEND=torch \
  "$PY" scripts/eval.py --device cuda --quiet
step "GPU benchmark" 90 "$PY" scripts/bench.py --gpu --quick

echo "=== summary"
printf '%s\n' "${status[@]}"
