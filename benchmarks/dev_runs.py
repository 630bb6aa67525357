"""Exact dot-product runs of several encoders on one split of a BEIR folder (no cluster): choose a checkpoint.

For each ``--model`` (a short name or a ``save_pretrained``/checkpoint folder), encode
the corpus and the split's judged queries (first ``--max-length`` window of each
text, as ``eval --truncate`` does), score every document by dot product and keep
the top ``--depth``. Writes ``{"runs": {model: {qid: {doc_id: score}}}, "nnz":
{...}}`` to ``--out``; with ``ranx`` installed it also prints nDCG@10, Recall@100
and MRR@10 per model (else score the file elsewhere: ``--score FILE``).

Use a dev split (never test) to pick among a training run's checkpoints:

    python benchmarks/dev_runs.py --data ../shared/data/nfcorpus_processed --split dev \
        --model echo-splade-smollm2-135m-head --model models/x/checkpoints/step-0000300 --model models/x --out dev.json
    python benchmarks/dev_runs.py --data ../shared/data/nfcorpus_processed --split dev --score dev.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

logger = logging.getLogger("dev_runs")


def load_split(data: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]], dict[str, str]]:
    """``(queries, qrels, corpus texts)`` of one split; test is refused."""
    from echo_splade.encoder import HELD_OUT_SPLITS
    from echo_splade.integration import EvalDataset

    if split in HELD_OUT_SPLITS:
        raise SystemExit(f"split {split!r} is held out for reporting; choose checkpoints on a dev split")
    dataset = EvalDataset(data, split=split)
    return dataset.queries, dataset.qrels, dataset.corpus_texts()


def run_model(
    model: str, queries: dict[str, str], corpus: dict[str, str], max_length: int, depth: int, batch_size: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    import torch

    from echo_splade.encoder import EchoSpladeEncoder

    encoder = EchoSpladeEncoder.from_pretrained(model, max_length=max_length, truncate=True, batch_size=batch_size)
    began = time.perf_counter()
    doc_ids = list(corpus)
    docs = encoder.encode_documents([corpus[d] for d in doc_ids])
    qids = list(queries)
    qs = encoder.encode_queries([queries[q] for q in qids])
    device, vocab_size = encoder.device, encoder.vocab_size

    def dense(vectors) -> torch.Tensor:
        matrix = torch.zeros(len(vectors), vocab_size, device=device)
        for row, v in enumerate(vectors):
            matrix[row, torch.tensor(v.indices, device=device, dtype=torch.long)] = torch.tensor(
                v.values, device=device
            )
        return matrix

    d, q = dense(docs), dense(qs)
    scores = q @ d.T  # [queries, docs]
    top = torch.topk(scores, min(depth, len(doc_ids)), dim=1)
    run = {
        qid: {doc_ids[j]: float(s) for s, j in zip(top.values[i].tolist(), top.indices[i].tolist()) if s > 0}
        for i, qid in enumerate(qids)
    }
    nnz = {
        "nnz_doc": sum(len(v.indices) for v in docs) / len(docs),
        "nnz_query": sum(len(v.indices) for v in qs) / len(qs),
        "seconds": time.perf_counter() - began,
    }
    logger.info("%s: %s", model, nnz)
    del encoder
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return run, nnz


def score(result: dict, qrels: dict[str, dict[str, int]]) -> None:
    import ranx

    judged = ranx.Qrels({q: {d: s for d, s in docs.items() if s > 0} for q, docs in qrels.items()})
    print(f"{'model':60}{'ndcg@10':>10}{'recall@100':>12}{'mrr@10':>10}{'nnz_doc':>10}{'nnz_query':>10}")
    for model, run in result["runs"].items():
        run = {q: docs or {"-": 0.0} for q, docs in run.items()}
        figures = ranx.evaluate(judged, ranx.Run(run), ["ndcg@10", "recall@100", "mrr@10"], make_comparable=True)
        nnz = result["nnz"][model]
        print(
            f"{model[-60:]:60}{figures['ndcg@10']:>10.4f}{figures['recall@100']:>12.4f}{figures['mrr@10']:>10.4f}"
            f"{nnz['nnz_doc']:>10.1f}{nnz['nnz_query']:>10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--model", action="append", default=[], help="encoder (repeat)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the runs here")
    parser.add_argument("--score", type=Path, help="score an existing runs file instead of encoding")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    queries, qrels, corpus = load_split(args.data, args.split)
    if args.score:
        score(json.loads(args.score.read_text()), qrels)
        return
    if not args.model:
        parser.error("give at least one --model (or --score FILE)")
    logger.info("%s %s: %d queries, %d documents", args.data, args.split, len(queries), len(corpus))
    result: dict = {"data": str(args.data), "split": args.split, "max_length": args.max_length, "runs": {}, "nnz": {}}
    for model in args.model:
        result["runs"][model], result["nnz"][model] = run_model(
            model, queries, corpus, args.max_length, args.depth, args.batch_size
        )
        if args.out:
            args.out.write_text(json.dumps(result))
    try:
        score(result, qrels)
    except ImportError:
        print("ranx is not installed: score the runs with --score", args.out)


if __name__ == "__main__":
    main()
