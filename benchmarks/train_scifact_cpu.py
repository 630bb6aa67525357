"""CPU training demonstration on SciFact (issue 3, "Shown on CPU").

Trains on the SciFact TRAIN split with the SmolLM2-135M backbone (``echo-splade
train``'s library API), then compares on held-out SciFact TEST queries, by exact
dot product (no cluster), with --max-length tokens per text (one window):

- ``zero-shot``: the untrained backbone with the paper's head (raw logits);
- ``untrained-head``: the configured head (e.g. log-softmax + constant bias) before training;
- ``trained``: the trained encoder.

It prints mean non-zeros per document and query and nDCG@10 for each. The
evaluation uses a fixed-seed subset so it fits a couple of CPU cores:
``--eval-queries`` test queries, all their judged documents, plus
``--distractors`` other documents sampled from the corpus. Each encoder runs the
backbone once per text (``max_logits``); biases are applied afterwards.

The defaults are the recipe of the built-in ``echo-splade-smollm2-135m-head`` (head
stage only: log-softmax head input, per-vocabulary bias from 4, 300 steps):

    python benchmarks/train_scifact_cpu.py --output models/smollm2-135m-scifact
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
    iter_beir_corpus,
    iter_beir_qrels,
    load_training_examples,
    read_beir_queries,
)

logger = logging.getLogger("train_scifact_cpu")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """The relevant (score > 0) judgments of a qrels TSV (the encoder's BEIR reader)."""
    qrels: dict[str, dict[str, int]] = {}
    for qid, did, score in iter_beir_qrels(path):
        if score > 0:
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def eval_subset(data: Path, n_queries: int, n_distractors: int, seed: int):
    """Held-out test queries, their judged documents and sampled distractors (fixed seed)."""
    qrels = read_qrels(data / "qrels" / "test.tsv")
    queries = read_beir_queries(data / "queries.jsonl")
    corpus = {
        d["_id"]: document_text(d.get("title", ""), d.get("text", "")) for d in iter_beir_corpus(data / "corpus.jsonl")
    }
    rng = random.Random(seed)
    qids = sorted(q for q in qrels if q in queries)
    qids = sorted(rng.sample(qids, min(n_queries, len(qids))))
    judged = sorted({d for q in qids for d in qrels[q] if d in corpus})
    others = sorted(set(corpus) - set(judged))
    dids = judged + sorted(rng.sample(others, min(n_distractors, len(others))))
    return ({q: queries[q] for q in qids}, {d: corpus[d] for d in dids}, {q: qrels[q] for q in qids})


def evaluate(
    label: str,
    q_logits: torch.Tensor,
    d_logits: torch.Tensor,
    bias: torch.Tensor | None,
    qids: list[str],
    dids: list[str],
    qrels: dict,
) -> dict:
    """nDCG@10 and non-zeros of ``log1p(relu(max_logits + bias))`` vectors, scored by exact dot product."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    shift = 0.0 if bias is None else bias
    q = torch.log1p(torch.relu(q_logits + shift))  # [queries, vocab]
    d = torch.log1p(torch.relu(d_logits + shift))  # [docs, vocab]
    scores = q @ d.T
    top = scores.topk(min(100, len(dids)), dim=1)
    run = {
        qid: {dids[j]: float(s) for s, j in zip(top.values[i].tolist(), top.indices[i].tolist())}
        for i, qid in enumerate(qids)
    }
    result = {
        "label": label,
        "ndcg@10": float(ranx_evaluate(Qrels(qrels), Run(run), "ndcg@10")),
        "mean_nnz_doc": float((d > 0).sum(1).float().mean()),
        "mean_nnz_query": float((q > 0).sum(1).float().mean()),
    }
    logger.info("%s: %s", label, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--output", type=Path, default=Path("models/smollm2-135m-scifact"))
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="input tokens per text (training and evaluation; texts are truncated to one window)",
    )
    parser.add_argument("--steps", type=int, default=0, help="LoRA steps (0: head stage only)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--normalize", default="log_softmax", choices=["none", "log_softmax"])
    parser.add_argument("--vocab-bias-init", type=float, default=4.0)
    parser.add_argument("--head-steps", type=int, default=300)
    parser.add_argument("--head-batch-size", type=int, default=64)
    parser.add_argument("--head-lr", type=float, default=0.05)
    parser.add_argument("--lambda-q", type=float, default=0.0)
    parser.add_argument("--lambda-d", type=float, default=0.0)
    parser.add_argument("--ramp", type=int, default=5)
    parser.add_argument("--lora-layers", default="all", help="decoder layers to adapt, e.g. 18-29 or 'all'")
    parser.add_argument(
        "--train-modules", default="", help="modules trained in full besides the LoRA (comma-separated; '' for none)"
    )
    parser.add_argument("--eval-queries", type=int, default=75)
    parser.add_argument("--distractors", type=int, default=150)
    parser.add_argument("--seed", type=int, default=13, help="seed of the evaluation subset")
    parser.add_argument("--train-seed", type=int, default=42, help="seed of the training run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is far faster than 2 when other processes share the cores)",
    )
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
    print(
        f"eval subset: {len(queries)} test queries, {len(docs)} documents "
        f"({sum(len(v) for v in qrels.values())} judged pairs)",
        flush=True,
    )

    history: list[dict] = []
    if not args.skip_training:
        examples = load_training_examples(args.data, split="train")
        config = TrainingConfig(
            model=args.model,
            max_length=args.max_length,
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=5,
            lambda_q=args.lambda_q,
            lambda_d=args.lambda_d,
            flops_ramp_steps=args.ramp,
            lora_layers=layers,
            normalize=args.normalize,
            vocab_bias_init=args.vocab_bias_init,
            head_steps=args.head_steps,
            head_batch_size=args.head_batch_size,
            head_learning_rate=args.head_lr,
            train_modules=tuple(m for m in args.train_modules.split(",") if m),
            gradient_checkpointing=False,
            checkpoint_every=25,
            seed=args.train_seed,
        )
        print(f"training on {len(examples)} SciFact train pairs: {config.to_dict()}", flush=True)
        began = time.perf_counter()
        SpladeTrainer(config, examples, args.output, device="cpu").train(
            resume=args.resume,
            on_log=lambda r: (
                history.append(r),
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True),
            ),
        )
        print(f"training took {time.perf_counter() - began:.0f} s", flush=True)
    if not history and (args.output / "train_log.jsonl").is_file():
        history = read_jsonl(args.output / "train_log.jsonl")

    qids, dids = list(queries), list(docs)
    q_texts, d_texts = [queries[i] for i in qids], [docs[i] for i in dids]
    began = time.perf_counter()
    zero_shot = EchoSpladeEncoder.from_pretrained(args.model, device="cpu", max_length=args.max_length, truncate=True)
    results = [
        evaluate(
            "zero-shot", zero_shot.max_logits(q_texts, "query"), zero_shot.max_logits(d_texts), None, qids, dids, qrels
        )
    ]
    del zero_shot
    trained = EchoSpladeEncoder.from_pretrained(args.output, device="cpu", max_length=args.max_length, truncate=True)
    q_logits, d_logits = trained.max_logits(q_texts, "query"), trained.max_logits(d_texts)
    if args.vocab_bias_init is not None and args.steps == 0:  # same backbone: the untrained head costs nothing
        results.append(
            evaluate(
                "untrained-head",
                q_logits,
                d_logits,
                torch.full((trained.vocab_size,), args.vocab_bias_init),
                qids,
                dids,
                qrels,
            )
        )
    bias = trained.vocab_bias.bias.detach() if trained.vocab_bias is not None else None
    results.append(evaluate("trained", q_logits, d_logits, bias, qids, dids, qrels))
    print(f"evaluation took {time.perf_counter() - began:.0f} s", flush=True)

    before, after = results[0], results[-1]
    window = max(1, min(20, len(history) // 4))
    summary = {"results": results}
    if history:
        summary["loss_first"] = sum(r["loss"] for r in history[:window]) / window
        summary["loss_last"] = sum(r["loss"] for r in history[-window:]) / window
    summary["nnz_doc_reduction"] = before["mean_nnz_doc"] / max(after["mean_nnz_doc"], 1e-9)
    (args.output / "scifact_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n=== SciFact CPU demonstration ===")
    if history:
        print(f"loss (mean of first/last {window} steps): {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}")
    print(
        f"nDCG@10 on {len(queries)} held-out test queries over {len(docs)} docs (exact dot product, "
        f"{args.max_length} tokens per text):"
    )
    for r in results:
        print(
            f"  {r['label']:<15} nDCG@10 {r['ndcg@10']:.4f}   non-zeros/doc {r['mean_nnz_doc']:8.0f}   "
            f"/query {r['mean_nnz_query']:8.0f}"
        )
    print(f"documents {summary['nnz_doc_reduction']:.0f}x sparser than zero-shot")


if __name__ == "__main__":
    main()
