#!/usr/bin/env bash
# Issue 3's GPU figures on one CUDA GPU: the encoder vs the naive implementation with a randomly
# initialised Mistral-7B-shaped model in bf16 (no weights needed), on SciFact documents and on the
# 16 x 512-token memory case. Prints the tables and keeps them under OUT_DIR.
#
#   bash benchmarks/gpu_encode_7b.sh ../shared/data/scifact/corpus.jsonl gpu-out
set -uo pipefail
corpus=${1:?usage: gpu_encode_7b.sh CORPUS.jsonl [OUT_DIR]}
out=${2:-gpu-out}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"
} 2>&1 | tee "$out/gpu.txt"
python3 "$(dirname "$0")/encode.py" --case corpus --shape mistral-7b --random-init --sample "${SAMPLE:-256}" \
  --corpus "$corpus" 2>&1 | tee "$out/encode_7b_corpus.txt"
python3 "$(dirname "$0")/encode.py" --case memory --shape mistral-7b --random-init 2>&1 | tee "$out/encode_7b_memory.txt"
