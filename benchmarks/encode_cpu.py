"""CPU encoding speed of the built-in encoder: where the time goes, and the speed-ups side by side (issue 17).

In one process, on the same sample of documents (default: 12 SciFact documents) or queries:

1. Where the time goes (the reference setting): tokenisation (``prepare``), the backbone forward pass, the
   SPLADE head (LM head + log-softmax + max-pool), pruning, and building the index document (terms + JSON).
2. Variants, each encoding the whole sample, alternated and repeated (``--repeats``; the machine is shared,
   so compare the ratios of one run, not absolute figures): fp32 with 2 and 1 torch threads, int8 dynamic
   quantization of the backbone's linear layers (``quantize="int8"``) with 1 (and 2) threads.
3. int8 against fp32 on the same texts: cosine of the pruned vectors, overlap of their top terms, and the
   share of weight the fp32 top terms keep. Tolerance stated in the README: per-text cosine >= 0.98.

    python benchmarks/encode_cpu.py [--kind document|query] [--docs 12] [--repeats 2] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def sample_texts(kind: str, n: int, corpus: Path) -> list[tuple[str, str, str]]:
    from echo_splade.encoder import iter_beir_corpus, read_beir_queries

    if kind == "query":
        queries = read_beir_queries(corpus / "queries.jsonl")
        return [(qid, "", text) for qid, text in list(queries.items())[:n]]
    out = []
    for record in iter_beir_corpus(corpus / "corpus.jsonl"):
        if str(record.get("text", "")).strip():
            out.append((str(record["_id"]), str(record.get("title", "")), str(record["text"])))
        if len(out) >= n:
            break
    return out


def breakdown(encoder, kind: str, records) -> dict:
    """Seconds per stage for one encode of ``records`` (hooks on the backbone and the head)."""
    import torch

    from echo_splade.encoder import document_text
    from echo_splade.mappings import document_source

    texts = [document_text(t, x) if kind == "document" else x for _, t, x in records]
    spent = {"backbone": 0.0, "head": 0.0}
    marks: list[float] = []
    backbone = encoder.backbone
    pre = backbone.register_forward_pre_hook(lambda *_: marks.append(time.perf_counter()))
    post = backbone.register_forward_hook(
        lambda *_: spent.__setitem__("backbone", spent["backbone"] + time.perf_counter() - marks.pop())
    )
    pooling = encoder.pooling

    class TimedPooling:
        def __call__(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return pooling(*args, **kwargs)
            finally:
                spent["head"] += time.perf_counter() - started

    encoder.pooling = TimedPooling()
    try:
        started = time.perf_counter()
        windows = encoder.prepare(texts, kind)
        spent["tokenise"] = time.perf_counter() - started
        started = time.perf_counter()
        with torch.inference_mode():
            vectors = encoder.encode(texts, kind, top_k=256)
        total = time.perf_counter() - started
    finally:
        encoder.pooling = pooling
        pre.remove()
        post.remove()
    started = time.perf_counter()
    for (doc_id, title, text), vector in zip(records, vectors):
        json.dumps(document_source(doc_id, title, text, encoder.tokens(vector), model="m", model_rev="r"))
    spent["document"] = time.perf_counter() - started
    # the encode call tokenises again: its share is the separately timed prepare
    spent["rest (padding, pruning)"] = total - spent["backbone"] - spent["head"] - spent["tokenise"]
    spent["total"] = total + spent["document"]
    lengths = sorted((len(w.input_ids) for _, w in windows), reverse=True)
    batch = encoder.batch_size
    padded = sum(max(lengths[i : i + batch]) * len(lengths[i : i + batch]) for i in range(0, len(lengths), batch))
    spent["windows"], spent["tokens"], spent["padded_tokens"] = len(windows), sum(lengths), padded
    return spent


def agreement(reference, other) -> dict:
    """Cosine, top-16 overlap and kept weight of ``other``'s vectors against ``reference``'s (same texts)."""
    cosines, overlaps, kept = [], [], []
    for a, b in zip(reference, other):
        da, db = a.to_dict(), b.to_dict()
        dot = sum(w * db.get(k, 0.0) for k, w in da.items())
        norm = math.sqrt(sum(w * w for w in da.values()) * sum(w * w for w in db.values()))
        cosines.append(dot / norm if norm else 0.0)
        top_a = set(sorted(da, key=da.get, reverse=True)[:16])
        top_b = set(sorted(db, key=db.get, reverse=True)[:16])
        overlaps.append(len(top_a & top_b) / 16)
        kept.append(sum(da[k] for k in top_b if k in da) / sum(da[k] for k in top_a))
    return {
        "cos_mean": statistics.mean(cosines),
        "cos_min": min(cosines),
        "top16_overlap": statistics.mean(overlaps),
        "top16_weight": statistics.mean(kept),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="echo-splade-smollm2-135m")
    parser.add_argument("--kind", choices=["document", "query"], default="document")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--docs", type=int, default=12, help="texts in the sample")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (ingest's default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32-2t,fp32-1t,int8-1t,int8-2t", help="comma-separated")
    args = parser.parse_args(argv)

    import torch

    from echo_splade.encoder import EchoSpladeEncoder, document_text

    records = sample_texts(args.kind, args.docs, args.corpus)
    texts = [document_text(t, x) if args.kind == "document" else x for _, t, x in records]
    load = dict(device="cpu", batch_size=args.batch_size)
    encoders = {"fp32": EchoSpladeEncoder.from_pretrained(args.model, **load)}
    if any(v.startswith("int8") for v in args.variants.split(",")):
        encoders["int8"] = EchoSpladeEncoder.from_pretrained(args.model, quantize="int8", **load)
    load_avg = os.getloadavg()[0]
    plural = {"document": "documents", "query": "queries"}[args.kind]
    print(
        f"{args.model}: {len(texts)} SciFact {plural}, batch {args.batch_size} windows, {os.cpu_count()} CPUs, "
        f"load average {load_avg:.1f} at the start"
    )

    torch.set_num_threads(1)
    for encoder in encoders.values():  # warm-up: first-call allocations are not part of any variant
        encoder.encode(texts[:1], args.kind, top_k=256)
    parts = breakdown(encoders["fp32"], args.kind, records)
    print(
        f"where the time goes (fp32, 1 thread; {parts['windows']} windows, {parts['tokens']} tokens, "
        f"{parts['padded_tokens']} with padding = {parts['padded_tokens'] / parts['tokens'] - 1:.1%} padding):"
    )
    for key in ("tokenise", "backbone", "head", "rest (padding, pruning)", "document"):
        print(f"  {key:24} {parts[key]:8.2f} s  {parts[key] / parts['total']:6.1%}")

    variants = args.variants.split(",")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    vectors: dict[str, list] = {}
    for r in range(args.repeats):
        for name in variants if r % 2 == 0 else list(reversed(variants)):
            precision, threads = name.split("-")
            torch.set_num_threads(int(threads.rstrip("t")))
            started = time.perf_counter()
            vectors[name] = encoders[precision].encode(texts, args.kind, top_k=256)
            rates[name].append(len(texts) / (time.perf_counter() - started))
            print(f"  run {r + 1} {name:8} {rates[name][-1]:7.3f} {plural}/s")
    base = statistics.median(rates[variants[0]])
    print(f"medians ({args.repeats} runs each, alternated) | {plural}/s | vs {variants[0]}")
    for name in variants:
        med = statistics.median(rates[name])
        print(f"  {name:36} | {med:8.3f} | {med / base:5.2f}x")
    if "int8" in encoders:
        reference = vectors.get("fp32-1t") or encoders["fp32"].encode(texts, args.kind, top_k=256)
        quantized = next(vectors[v] for v in variants if v.startswith("int8"))
        agree = agreement(reference, quantized)
        print(
            f"int8 vs fp32 vectors (top 256): cosine mean {agree['cos_mean']:.4f}, min {agree['cos_min']:.4f} "
            f"(tolerance: >= 0.98 per text); top-16 terms shared {agree['top16_overlap']:.1%}; the int8 top 16 "
            f"hold {agree['top16_weight']:.1%} of the fp32 top-16 weight"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
