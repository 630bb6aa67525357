#!/usr/bin/env bash
# Issue 6's GPU training run: LoRA (r=8) + vocabulary bias on SmolLM2-135M, bf16 autocast, one
# checkpoint every EVERY steps; then every checkpoint (and the head-only echo-splade-smollm2-135m-head) is scored
# by exact dot product on a DEV split (benchmarks/dev_runs.py) and packed without optimizer state.
#
#   echo-splade mine-negatives --dataset ../shared/data/scifact --index mine-scifact --output scifact.jsonl
#   echo-splade mine-negatives --dataset ../shared/data/nfcorpus_processed --index mine-nfcorpus \
#       --output nfcorpus.jsonl --max-positives 2 --skip 3
#   cat scifact.jsonl nfcorpus.jsonl ../shared/data/wikiqa/train_pairs.jsonl > train.jsonl
#   bash benchmarks/gpu_train_lora.sh train.jsonl ../shared/data/nfcorpus_processed gpu-out
#
# Environment: STEPS (default 800, as the built-in), EVERY (checkpoint interval, 200), TRAIN_TIMEOUT
# (seconds, default 0 = none; when it cuts training, the checkpoints so far are still scored), RESUME=1 (continue from the latest
# checkpoint in RUN_DIR), RUN_DIR, MODEL and BIAS_INIT (e.g. tiny-mistral and 12 for a smoke run).
set -uo pipefail
shopt -s nullglob
train=${1:?usage: gpu_train_lora.sh TRAIN.jsonl DEV_BEIR_DIR [OUT_DIR]}
dev=${2:?usage: gpu_train_lora.sh TRAIN.jsonl DEV_BEIR_DIR [OUT_DIR]}
out=${3:-gpu-out}
run=${RUN_DIR:-/tmp/echo-splade-lora}
mkdir -p "$out"
timeout "${TRAIN_TIMEOUT:-0}" python3 -m echo_splade -v train --data "$train" --output "$run" \
  --model "${MODEL:-smollm2-135m}" --max-length 256 --normalize log_softmax \
  --vocab-bias-init "${BIAS_INIT:-4}" --head-steps 300 --head-batch-size 64 --head-lr 0.05 \
  --steps "${STEPS:-800}" --batch-size 32 --lr 2e-4 --warmup-steps 100 \
  --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 \
  --lambda-q 1e-3 --lambda-d 1e-3 --flops-ramp-steps 200 --seed 42 \
  --checkpoint-every "${EVERY:-200}" --keep-checkpoints 20 --no-gradient-checkpointing ${RESUME:+--resume} > "$out/train.txt" 2>&1
echo "train exit $?"
grep -v '^{' "$out/train.txt" | tail -4
tail -2 "$run/train_log.jsonl"
tar -C "$run" -czf "$out/logs.tgz" train_log.jsonl training_config.json
models=(echo-splade-smollm2-135m-head "$run"/checkpoints/step-*)
python3 "$(dirname "$0")/dev_runs.py" --data "$dev" --split dev --batch-size 64 --out "$out/dev_runs.json" \
  $(printf -- '--model %s ' "${models[@]}") 2>&1 | grep -v 'Loading weights' | tail -12
for checkpoint in "$run"/checkpoints/step-*; do
  tar -C "$checkpoint" --exclude trainer_state.pt -czf "$out/$(basename "$checkpoint").tgz" .
done
