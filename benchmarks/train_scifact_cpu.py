"""CPU training demonstration on SciFact (issue 3, "Shown on CPU").

Trains a LoRA adapter on the SciFact TRAIN split with the SmolLM2-135M backbone,
then compares zero-shot and trained encoders on held-out SciFact TEST queries:
mean non-zeros per document and nDCG@10 by exact dot product (no cluster).

The evaluation uses a fixed-seed subset so it fits a couple of CPU cores:
``--eval-queries`` test queries, all their judged documents, plus
``--distractors`` other documents sampled from the corpus.

    python benchmarks/train_scifact_cpu.py --output models/smollm2-135m-scifact

The defaults are the run reported in the session notes (about 17 minutes of
training plus 2 x ~10 minutes of evaluation on 2 heavily shared cores). With
them the loss falls and documents get ~66x sparser, but nDCG@10 did NOT rise
above zero-shot (both ~0.02, i.e. chance on this subset): 70 steps of 4 pairs
are far too little ranking signal. More steps / larger batches (a GPU) are needed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch

from echo_splade.encoder import (
    EchoSpladeEncoder,
    SpladeTrainer,
    TrainingConfig,
    document_text,
    load_training_examples,
)

logger = logging.getLogger("train_scifact_cpu")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def eval_subset(data: Path, n_queries: int, n_distractors: int, seed: int):
    """Held-out test queries, their judged documents and sampled distractors (fixed seed)."""
    qrels = read_qrels(data / "qrels" / "test.tsv")
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    corpus = {d["_id"]: document_text(d.get("title", ""), d.get("text", "")) for d in read_jsonl(data / "corpus.jsonl")}
    rng = random.Random(seed)
    qids = sorted(q for q in qrels if q in queries)
    qids = sorted(rng.sample(qids, min(n_queries, len(qids))))
    judged = sorted({d for q in qids for d in qrels[q] if d in corpus})
    others = sorted(set(corpus) - set(judged))
    dids = judged + sorted(rng.sample(others, min(n_distractors, len(others))))
    return ({q: queries[q] for q in qids}, {d: corpus[d] for d in dids}, {q: qrels[q] for q in qids})


def dense(encoder: EchoSpladeEncoder, texts: list[str], kind: str, chunk: int = 32) -> torch.Tensor:
    """Encode through the public API and stack the sparse vectors into a ``[n, vocab]`` matrix."""
    out = torch.zeros(len(texts), encoder.vocab_size)
    for start in range(0, len(texts), chunk):
        for row, vec in enumerate(encoder.encode(texts[start:start + chunk], kind), start=start):
            out[row, torch.tensor(vec.indices, dtype=torch.long)] = torch.tensor(vec.values)
    return out


def evaluate(encoder: EchoSpladeEncoder, queries: dict, docs: dict, qrels: dict, label: str) -> dict:
    from ranx import Qrels, Run, evaluate as ranx_evaluate

    began = time.perf_counter()
    qids, dids = list(queries), list(docs)
    d = dense(encoder, [docs[i] for i in dids], "document")
    q = dense(encoder, [queries[i] for i in qids], "query")
    scores = q @ d.T  # exact dot product [queries, docs]
    top = scores.topk(min(100, len(dids)), dim=1)
    run = {qid: {dids[j]: float(s) for s, j in zip(top.values[i].tolist(), top.indices[i].tolist())}
           for i, qid in enumerate(qids)}
    ndcg = float(ranx_evaluate(Qrels(qrels), Run(run), "ndcg@10"))
    result = {"label": label, "ndcg@10": ndcg, "mean_nnz_doc": float((d > 0).sum(1).float().mean()),
              "mean_nnz_query": float((q > 0).sum(1).float().mean()), "seconds": time.perf_counter() - began}
    logger.info("%s: %s", label, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--output", type=Path, default=Path("models/smollm2-135m-scifact"))
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--eval-max-length", type=int, default=128, help="input tokens per text when evaluating "
                        "(default: --max-length); texts are truncated to one window")
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lambda-q", type=float, default=0.02)
    parser.add_argument("--lambda-d", type=float, default=0.1)
    parser.add_argument("--ramp", type=int, default=5)
    parser.add_argument("--lora-layers", default="26-29", help="decoder layers to adapt, e.g. 18-29 or 'all'")
    parser.add_argument("--train-modules", default="model.norm",
                        help="modules trained in full besides the LoRA (comma-separated; '' for none)")
    parser.add_argument("--eval-queries", type=int, default=75)
    parser.add_argument("--distractors", type=int, default=150)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is far faster than 2 when other processes share the cores)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--skip-training", action="store_true", help="evaluate an existing --output")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "transformers", "peft"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    layers = None
    if args.lora_layers != "all":
        first, last = (int(x) for x in args.lora_layers.split("-"))
        layers = tuple(range(first, last + 1))
    queries, docs, qrels = eval_subset(args.data, args.eval_queries, args.distractors, args.seed)
    print(f"eval subset: {len(queries)} test queries, {len(docs)} documents "
          f"({sum(len(v) for v in qrels.values())} judged pairs)", flush=True)

    history: list[dict] = []
    if not args.skip_training:
        examples = load_training_examples(args.data, split="train")
        config = TrainingConfig(model=args.model, max_length=args.max_length, steps=args.steps,
                                batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=5,
                                lambda_q=args.lambda_q, lambda_d=args.lambda_d, flops_ramp_steps=args.ramp,
                                lora_layers=layers,
                                train_modules=tuple(m for m in args.train_modules.split(",") if m), gradient_checkpointing=False, checkpoint_every=25,
                                seed=args.seed)
        print(f"training on {len(examples)} SciFact train pairs: {config.to_dict()}", flush=True)
        began = time.perf_counter()
        SpladeTrainer(config, examples, args.output, device="cpu").train(
            resume=args.resume,
            on_log=lambda r: (history.append(r), print(json.dumps({k: round(v, 4) for k, v in r.items()}),
                                                        flush=True)))
        print(f"training took {time.perf_counter() - began:.0f} s", flush=True)
    if not history and (args.output / "train_log.jsonl").is_file():
        history = read_jsonl(args.output / "train_log.jsonl")

    eval_length = args.eval_max_length or args.max_length
    zero_shot = EchoSpladeEncoder.from_pretrained(args.model, device="cpu", max_length=eval_length, truncate=True)
    before = evaluate(zero_shot, queries, docs, qrels, "zero-shot")
    del zero_shot
    trained = EchoSpladeEncoder.from_pretrained(args.output, device="cpu", max_length=eval_length, truncate=True)
    after = evaluate(trained, queries, docs, qrels, "trained")

    window = max(1, min(20, len(history) // 4))
    summary = {"before": before, "after": after}
    if history:
        summary["loss_first"] = sum(r["loss"] for r in history[:window]) / window
        summary["loss_last"] = sum(r["loss"] for r in history[-window:]) / window
        summary["ranking_first"] = sum(r["ranking"] for r in history[:window]) / window
        summary["ranking_last"] = sum(r["ranking"] for r in history[-window:]) / window
    summary["nnz_doc_reduction"] = before["mean_nnz_doc"] / max(after["mean_nnz_doc"], 1e-9)
    (args.output / "scifact_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n=== SciFact CPU demonstration ===")
    if history:
        print(f"loss (mean of first/last {window} steps): {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}; "
              f"ranking part {summary['ranking_first']:.3f} -> {summary['ranking_last']:.3f}")
    print(f"mean non-zeros per document: zero-shot {before['mean_nnz_doc']:.0f} -> trained {after['mean_nnz_doc']:.0f} "
          f"({summary['nnz_doc_reduction']:.1f}x fewer); per query {before['mean_nnz_query']:.0f} -> "
          f"{after['mean_nnz_query']:.0f}")
    print(f"nDCG@10 on {len(queries)} held-out test queries over {len(docs)} docs (exact dot product, "
          f"max_length {eval_length}): "
          f"zero-shot {before['ndcg@10']:.4f} -> trained {after['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
