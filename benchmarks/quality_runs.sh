#!/usr/bin/env bash
# The quality figures of the README and the model cards, in the cluster, FULL documents (every window
# max-pooled; no --truncate unless a stage says so). Each stage is resumable: an index that exists is
# evaluated as is (ingest again after deleting it, or with `echo-splade ingest --resume`).
#
#   bash benchmarks/quality_runs.sh STAGE [URL]
#
# Stages (run in this order; each prints its tables and writes runs/quality/<name>.json/.png):
#   dev-peer     the MLM peer on the DEV data: SciFact train queries, NFCorpus dev, MedQuAD held-out dev
#   dev-echo     the echo built-in on the same dev data
#   fusion       hybrid fusion method and weight, query top-k: chosen on the dev indexes (benchmarks/dev_choices.py)
#   test-peer    the peer on the test splits (SciFact, Cranfield, CISI, ArguAna): reporting only
#   test-echo    the echo built-in on the test splits (Cranfield, CISI, SciFact, ArguAna): reporting only
#   truncated    SciFact test with the first window only (--truncate), for the cost/quality comparison
#   compare      one table per collection: BM25, both models, their hybrids (reads the indexes above)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STAGE="${1:?stage}"
URL="${2:-${ECHO_SPLADE_URL:-http://127.0.0.1:9200}}"
PY="${PYTHON:-.venv/bin/python}"
DATA="${ECHO_SPLADE_SHARED_DATA:-../shared/data}"
OUT=runs/quality
mkdir -p "$OUT"
PEER=echo-splade-bert-tiny
ECHO=echo-splade-smollm2-135m
# the fusion: the connector's default (weighted, sparse weight 0.5: chosen on the dev data of the `fusion` stage)
FUSION=(--hybrid weighted ${SPARSE_WEIGHT:+--sparse-weight "$SPARSE_WEIGHT"})

ev() {  # ev NAME DATASET SPLIT MODEL [extra eval options...]
    local name="$1" dataset="$2" split="$3" model="$4"
    shift 4
    echo "== $name: $dataset ($split) with $model $*"
    "$PY" -m echo_splade eval --url "$URL" --dataset "$dataset" --split "$split" --model "$model" \
        --index "q-$(basename "$dataset")-$model" --report "$OUT/$name.json" --no-progress "$@" 2>&1 \
        | grep -v -e "Warning" -e "scores\[i\]" -e "Loading weights"
}

medquad_dev() {  # the MedQuAD held-out dev folder (never trained on by any built-in)
    if [ ! -f runs/dev/medquad/qrels/dev.tsv ]; then
        "$PY" -m echo_splade split-pairs --pairs "$DATA/medquad_train/train_pairs.jsonl" --output runs/dev/medquad \
            --dev-size 1000 --distractors 1000 --seed 0
    fi
}

case "$STAGE" in
dev-peer|dev-echo)
    model=$PEER; [ "$STAGE" = dev-echo ] && model=$ECHO
    medquad_dev
    ev "$STAGE-scifact-train" "$DATA/scifact" train "$model" "${FUSION[@]}"
    ev "$STAGE-nfcorpus-dev" "$DATA/nfcorpus_processed" dev "$model" "${FUSION[@]}"
    ev "$STAGE-medquad-dev" runs/dev/medquad dev "$model" "${FUSION[@]}"
    ;;
fusion)
    # query top-k and fusion on the dev indexes of the dev-* stages: each query encoded once, fused exactly as
    # the connector does (benchmarks/dev_choices.py)
    for model in $PEER $ECHO; do
        "$PY" benchmarks/dev_choices.py --url "$URL" --output "$OUT/choices-$model.json" \
            --run "$DATA/scifact:train:q-scifact-$model" \
            --run "$DATA/nfcorpus_processed:dev:q-nfcorpus_processed-$model" \
            --run "runs/dev/medquad:dev:q-medquad-$model"
    done
    ;;
test-peer|test-echo)
    model=$PEER; [ "$STAGE" = test-echo ] && model=$ECHO
    for c in cranfield cisi scifact arguana; do
        ev "$STAGE-$c" "$DATA/$c" test "$model" "${FUSION[@]}"
    done
    ;;
truncated)
    "$PY" -m echo_splade eval --url "$URL" --dataset "$DATA/scifact" --split test --model $PEER --truncate \
        --index "q-scifact-$PEER-truncated" --report "$OUT/truncated-scifact-$PEER.json" --no-progress "${FUSION[@]}"
    ;;
compare)
    for c in cranfield cisi scifact arguana; do
        echo "== $c test: BM25, $ECHO, $PEER"
        "$PY" -m echo_splade eval --url "$URL" --dataset "$DATA/$c" --split test --model $ECHO --model $PEER \
            --index "q-$c" --report "$OUT/compare-$c.json" --no-progress "${FUSION[@]}" 2>&1 \
            | grep -v -e "Warning" -e "scores\[i\]" -e "Loading weights"
    done
    ;;
*) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
