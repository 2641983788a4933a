#!/usr/bin/env bash
# The GPU checks of issue "Learner II", prepared to run in ONE call on a lent GPU machine
# (a bare image with CUDA PyTorch, transformers and peft but without gymnasium; see
# /work/.library/device/). Expected cost on an H100: a few minutes, most of it building and
# saving the random 1.5 B model twice.
#
# Before the call, on the development machine (wheels for the packages the image lacks):
#   echo /.whl/ >> .git/info/exclude
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl gymnasium==1.4.0 farama-notifications
# The call:  run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=560)
#
# 1. benchmarks/gpu_readiness.py: one LoRA GRPO+AEM iteration of a random model with
#    Qwen2.5-1.5B's architecture (max_memory_allocated), then the learner's preflight at the
#    paper preset's worst case (128 rows of 2,048 + 512 tokens, 16,384-token update micro-batch).
# 2. the same iteration under --track-tensors, so the CPU-side estimate (8.61 GB at these 64 rows) gets checked
#    against the GPU's own figure (optional: bounded so that step 1's results always come back).
set -uo pipefail
PY=${PY:-python3}      # the image's python3 holds CUDA PyTorch
LAYERS=${LAYERS:-28}   # CPU smoke test of this script:
ARGS=${ARGS:-}         #   LAYERS=1 ARGS="--groups 1 --group-size 2 --max-turns 1" PY=.venv/bin/python bash scripts/device_check.sh
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/aem-device}
mkdir -p "$OUT"
"$PY" -c "import gymnasium, peft, transformers, torch; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())" \
    || { echo "a package is missing: carry its wheel in .whl (see the header)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

echo "== 1. one iteration + the paper preset's worst case"
timeout 400 "$PY" benchmarks/gpu_readiness.py --layers "$LAYERS" $ARGS --json 2>&1 | grep -v -E "Loading weights|Writing model" | tee "$OUT/readiness.log"
echo "== 2. the same iteration, live tensors counted (checks the CPU estimate)"
timeout 140 "$PY" benchmarks/gpu_readiness.py --layers "$LAYERS" $ARGS --track-tensors --paper-preflight no --json 2>&1 \
    | grep -v -E "Loading weights|Writing model" | tee "$OUT/readiness_tracked.log"
exit 0
