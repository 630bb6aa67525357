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

Other modes (one each):

- ``--study``: why int8 moves the vectors: each backbone linear layer's input outliers (the largest token's
  absolute max over the median token's) and weight outliers, then int8 variants (per-tensor / per-channel weights,
  layer groups kept fp32, per-token activations ``Int8Linear``, bf16) against fp32 (cosine, top-16 overlap), and
  how the error in the pooled log-probabilities becomes an error in the weights (``log1p(relu(l + bias))``).
- ``--latency``: one query at a time, p50/p90 ms per variant (``fp32-1t``, ``int8-token-2t``,
  ``int8-token-head+compile-2t``, ...: precision, ``+compile`` for ``torch.compile``, torch threads), variants
  rotated per query, on the first ``--docs`` queries of each of ``--latency-corpora`` (SciFact, ArguAna); the
  compilation time of each ``+compile`` variant (its first call), and each variant's vectors against fp32.
  ``+smooth`` quantizes after a SmoothQuant migration (``quantize(..., smooth=SMOOTH_ALPHA)``; ``+smooth0.6``: another
  alpha). With ``--e2e-index NAME --e2e-url URL`` (one corpus) the timed call is the whole search instead:
  ``SparseRetriever.search(text, k=10)`` on that index (llm mode, its defaults, the query-vector cache off).
- ``--ndcg-index NAME --ndcg-url URL --ndcg-corpus DIR``: nDCG@10 of the collection's test queries encoded by each
  precision of ``--variants`` against an index of the same model (documents as indexed); ``NAME,OTHER``: also on
  another index of the same documents (e.g. written by ``ingest --int8``), all against fp32 on the first.

    python benchmarks/encode_cpu.py --kind query --docs 30 --study
    python benchmarks/encode_cpu.py --latency --docs 20 --variants fp32-1t,fp32-2t,int8-token-1t,int8-token-2t,int8-1t
    python benchmarks/encode_cpu.py --latency --docs 20 --variants \
        fp32-2t,int8-token-2t,int8-token-head-2t,fp32+compile-2t,int8-token+compile-2t,int8-token-head+compile-2t
    python benchmarks/encode_cpu.py --latency --docs 20 --latency-corpora scifact --e2e-index INDEX --e2e-url URL \
        --variants fp32-2t,int8-token-head+smooth-2t,int8-token-head+smooth+compile-2t
    python benchmarks/encode_cpu.py --ndcg-index cranfield-smollm2 --ndcg-url URL --ndcg-corpus ../shared/data/cranfield \
        --variants fp32-1t,int8-token-1t,int8-1t
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from functools import partial
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


# ---- the int8 study (--study): why int8 moves the vectors, and which variant stays within tolerance ----

LINEAR_KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_profile(encoder, texts: list[str], kind: str) -> dict[str, dict]:
    """Per backbone ``nn.Linear``: how much a per-tensor int8 scale costs its inputs and weights.

    ``act_ratio``: the input's absolute max over the whole call / the median token's absolute max (one text per
    call, as a query is encoded); a per-tensor dynamic scale leaves the median token ``127 / act_ratio`` levels.
    ``act_pos0``: share of calls whose largest input sits at position 0. ``w_ratio``: the weight's absolute max /
    the median output row's absolute max (what per-channel weight scales fix).
    """
    import torch

    stats: dict[str, dict] = {}
    hooks = []
    for name, module in encoder.backbone.named_modules():
        if type(module) is not torch.nn.Linear:
            continue
        rows = module.weight.detach().abs().amax(dim=1)
        stats[name] = {"ratios": [], "pos0": 0, "w_ratio": float(rows.max() / rows.median())}

        def hook(_module, inputs, _output, name=name):
            x = inputs[0].detach().float()
            per_token = x.abs().amax(dim=-1).reshape(-1)
            stats[name]["ratios"].append(float(per_token.max() / per_token.median()))
            stats[name]["pos0"] += int(int(per_token.argmax()) % x.shape[-2] == 0)

        hooks.append(module.register_forward_hook(hook))
    try:
        for text in texts:
            encoder.encode([text], kind, top_k=256)
    finally:
        for h in hooks:
            h.remove()
    return {
        name: {
            "act_ratio": statistics.median(s["ratios"]),
            "act_pos0": s["pos0"] / len(s["ratios"]),
            "w_ratio": s["w_ratio"],
        }
        for name, s in stats.items()
    }


def quantized_copy(encoder, per_channel: bool, keep_fp32=lambda name: False):
    """A deep copy of ``encoder`` whose backbone ``nn.Linear`` layers (except ``keep_fp32(name)``) run in int8."""
    import copy
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eager quantization API is deprecated in the locked torch
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        clone = copy.deepcopy(encoder)
        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        names = [n for n, m in clone.backbone.named_modules() if type(m) is torch.nn.Linear and not keep_fp32(n)]
        quantize_dynamic(clone.backbone, {n: qconfig for n in names}, dtype=torch.qint8, inplace=True)
    return clone, len(names)


def per_token_copy(encoder, keep_fp32=lambda name: False):
    """A deep copy of ``encoder`` whose backbone ``nn.Linear`` layers (except ``keep_fp32(name)``) are
    ``Int8Linear`` (int8 weights per output channel, activations per token)."""
    import copy

    import torch

    from echo_splade.encoder import Int8Linear

    clone = copy.deepcopy(encoder)
    names = [n for n, m in clone.backbone.named_modules() if type(m) is torch.nn.Linear and not keep_fp32(n)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = clone.backbone.get_submodule(parent_name)
        setattr(parent, child, Int8Linear(getattr(parent, child)))
    return clone, len(names)


def logit_amplification(encoder, other, texts: list[str], kind: str) -> dict:
    """How an error in the pooled log-probabilities becomes an error in the weights (``log1p(relu(l + bias))``).

    Over the vocabulary entries with an fp32 weight > 0: the median |delta l| (``other`` minus fp32), the median
    pre-activation ``l + bias`` (how far above the relu's zero an active term sits), the share of active terms
    whose pre-activation is below that median error, the cosine of the pooled log-probabilities on those entries
    (before the relu) against the cosine of the weights.
    """
    import torch

    ref = encoder.max_logits(texts, kind)
    got = other.max_logits(texts, kind)
    bias = encoder.vocab_bias.bias.float() if encoder.vocab_bias is not None else torch.zeros(ref.shape[1])
    deltas, margins, logit_cos, weight_cos = [], [], [], []
    for a, b in zip(ref, got):
        pre_a, pre_b = a + bias, b + bias
        active = pre_a > 0
        deltas.append((pre_b - pre_a)[active].abs())
        margins.append(pre_a[active])
        logit_cos.append(float(torch.nn.functional.cosine_similarity(a[active], b[active], dim=0)))
        wa, wb = torch.log1p(torch.relu(pre_a)), torch.log1p(torch.relu(pre_b))
        weight_cos.append(float(torch.nn.functional.cosine_similarity(wa, wb, dim=0)))
    delta, margin = torch.cat(deltas), torch.cat(margins)
    return {
        "delta_median": float(delta.median()),
        "margin_median": float(margin.median()),
        "below_error": float((margin < delta.median()).float().mean()),
        "flipped_off": float(
            (torch.cat([(got[i] + bias)[ref[i] + bias > 0] for i in range(len(ref))]) <= 0).float().mean()
        ),
        "logit_cos": statistics.mean(logit_cos),
        "weight_cos": statistics.mean(weight_cos),
    }


def study(args, texts: list[str]) -> None:
    """Why int8 moves the vectors (per layer), and the variants' agreement with fp32 and speed."""
    import torch

    from echo_splade.encoder import EchoSpladeEncoder

    torch.set_num_threads(1)
    fp32 = EchoSpladeEncoder.from_pretrained(args.model, device="cpu", batch_size=args.batch_size)
    profile = linear_profile(fp32, texts, args.kind)
    print(f"activation outliers per backbone linear layer ({len(profile)} layers; one {args.kind} per call):")
    print("  kind        median act max/median-token   worst layer (ratio, max at position 0)   weight max/median-row")
    for kind in LINEAR_KINDS:
        rows = {n: p for n, p in profile.items() if n.endswith(kind)}
        if not rows:
            continue
        worst = max(rows, key=lambda n: rows[n]["act_ratio"])
        print(
            f"  {kind:10} {statistics.median(p['act_ratio'] for p in rows.values()):12.1f}"
            f"{'':18}{worst:>28} ({rows[worst]['act_ratio']:.0f}, {rows[worst]['act_pos0']:.0%})"
            f"{statistics.median(p['w_ratio'] for p in rows.values()):10.1f}"
        )
    ranked = sorted(profile, key=lambda n: -profile[n]["act_ratio"])
    print("  top 8 by input outlier ratio: " + ", ".join(f"{n} {profile[n]['act_ratio']:.0f}" for n in ranked[:8]))

    reference = fp32.encode(texts, args.kind, top_k=256)
    started = time.perf_counter()
    fp32.encode(texts, args.kind, top_k=256)
    fp32_rate = len(texts) / (time.perf_counter() - started)
    outliers = set(ranked[: args.study_skip])
    variants = {
        "int8 per-tensor, all (the quantize='int8' option)": (False, lambda n: False),
        "int8 per-channel, all": (True, lambda n: False),
        "int8 per-tensor, attention only (q,k,v,o)": (False, lambda n: "mlp" in n),
        "int8 per-tensor, MLP only (gate,up,down)": (False, lambda n: "self_attn" in n),
        "int8 per-tensor, all but down_proj": (False, lambda n: n.endswith("down_proj")),
        "int8 per-channel, all but down_proj": (True, lambda n: n.endswith("down_proj")),
        f"int8 per-channel, all but the {len(outliers)} worst-outlier layers": (True, lambda n: n in outliers),
        "int8 per-channel, all but layers 0-1 and the last 2": (True, _edge_layers(fp32.backbone, 2)),
    }
    per_token = {
        "int8 per-token activations, per-channel weights, all (Int8Linear)": lambda n: False,
        "int8 per-token (Int8Linear), all but down_proj": lambda n: n.endswith("down_proj"),
        f"int8 per-token (Int8Linear), all but the {len(outliers)} worst-outlier layers": lambda n: n in outliers,
    }
    if args.study_only_per_token:
        variants = {}
    print(f"variants against fp32 ({len(texts)} {args.kind} texts; fp32 {fp32_rate:.2f} texts/s, 1 thread, batched):")
    print(
        f"  {'variant':62} {'int8 layers':>11} {'cos mean':>8} {'cos min':>8} {'top16':>6} {'texts/s':>8} {'x fp32':>7}"
    )
    families = [  # each family's first variant also gets the amplification figures
        {label: partial(quantized_copy, fp32, per_channel, keep) for label, (per_channel, keep) in variants.items()},
        {label: partial(per_token_copy, fp32, keep) for label, keep in per_token.items()},
    ]
    amplifications: list[tuple[str, dict]] = []
    for family in families:
        for position, (label, make) in enumerate(family.items()):
            clone, count = make()
            study_row(label, count, clone, texts, args.kind, reference, fp32_rate)
            if position == 0:
                amplifications.append((label, logit_amplification(fp32, clone, texts, args.kind)))
            del clone
    if not args.study_only_per_token:
        bf16_variant(args, texts, reference, fp32_rate)
    for label, a in amplifications:
        print(
            f"amplification ({label}): on the terms active in fp32, median |error| of the pooled "
            f"log-probability {a['delta_median']:.3f} against a median pre-activation (log-prob + bias) of "
            f"{a['margin_median']:.3f}; {a['below_error']:.0%} of the active terms sit below that error, "
            f"{a['flipped_off']:.0%} are switched off; cosine of the log-probabilities {a['logit_cos']:.4f} "
            f"vs of the weights {a['weight_cos']:.4f}"
        )


def bf16_variant(args, texts, reference, fp32_rate) -> None:
    from echo_splade.encoder import EchoSpladeEncoder

    bf16 = EchoSpladeEncoder.from_pretrained(args.model, device="cpu", batch_size=args.batch_size, dtype="bfloat16")
    study_row("bf16 weights and activations (dtype=bfloat16)", 0, bf16, texts, args.kind, reference, fp32_rate)


def study_row(label, count, encoder, texts, kind, reference, fp32_rate) -> None:
    """One row of the --study table: ``encoder``'s agreement with fp32 and its batched speed (after a warm-up)."""
    encoder.encode(texts[:1], kind, top_k=256)
    started = time.perf_counter()
    vectors = encoder.encode(texts, kind, top_k=256)
    rate = len(texts) / (time.perf_counter() - started)
    agree = agreement(reference, vectors)
    print(
        f"  {label:62} {count:11d} {agree['cos_mean']:8.4f} {agree['cos_min']:8.4f} "
        f"{agree['top16_overlap']:6.1%} {rate:8.2f} {rate / fp32_rate:7.2f}"
    )


def _edge_layers(backbone, n: int):
    import re

    layers = len(backbone.layers)
    edge = set(range(n)) | set(range(layers - n, layers))

    def keep(name: str) -> bool:
        match = re.search(r"layers\.(\d+)\.", name)
        return bool(match) and int(match.group(1)) in edge

    return keep


# ---- per-query latency (--latency) and retrieval quality of the query-side variants (--ndcg-index) ----


def variant_encoders(model: str, precisions: list[str], batch_size: int, warm_text: str | None = None) -> dict:
    """One encoder per precision: ``fp32``, ``bf16`` or a ``quantize`` mode (``int8``, ``int8-token``,
    ``int8-token-head``), each optionally with ``+smooth`` (SmoothQuant migration before quantizing, alpha
    ``SMOOTH_ALPHA``; ``+smooth0.6`` for another alpha) and ``+compile`` (``torch.compile`` of the backbone, after
    quantizing). With ``warm_text``, each compiled encoder encodes it once and the seconds that took (the
    compilation) are printed."""
    import copy

    from echo_splade.encoder import SMOOTH_ALPHA, EchoSpladeEncoder

    fp32 = EchoSpladeEncoder.from_pretrained(model, device="cpu", batch_size=batch_size)
    out = {}
    for precision in precisions:
        base, *extras = precision.split("+")
        smooth, compile_ = None, False
        for extra in extras:
            if extra == "compile":
                compile_ = True
            elif extra.startswith("smooth"):
                smooth = float(extra[len("smooth") :] or SMOOTH_ALPHA)
            else:
                raise ValueError(f"unknown variant suffix +{extra} in {precision!r} (known: +smooth[ALPHA], +compile)")
        if base == "fp32":
            encoder = fp32 if not extras else copy.deepcopy(fp32)
        elif base == "bf16":
            encoder = EchoSpladeEncoder.from_pretrained(model, device="cpu", batch_size=batch_size, dtype="bfloat16")
        else:
            encoder = copy.deepcopy(fp32)
            encoder.quantize(base, smooth=smooth)
        if compile_:
            encoder.compile(dynamic=True)
            if warm_text is not None:
                started = time.perf_counter()
                encoder.encode([warm_text], "query", top_k=256)
                print(f"  {precision}: first call (compilation) {time.perf_counter() - started:.1f} s", flush=True)
        out[precision] = encoder
    return out


def latency(args) -> None:
    """p50/p90 ms of one query at a time, per variant, variants rotated per query (repeated ``--repeats``);
    each variant's vectors against ``fp32`` (cosine per query: mean, min; top-16 terms shared)."""
    import numpy as np
    import torch

    variants = args.variants.split(",")
    precisions = sorted({v.rsplit("-", 1)[0] for v in variants} | {"fp32"})
    corpora = args.latency_corpora.split(",")
    if args.e2e_index and len(corpora) != 1:
        raise SystemExit("--e2e-index is one corpus's index: pass one --latency-corpora")
    first = [x for _, _, x in sample_texts("query", 1, REPO.parent / "shared" / "data" / corpora[0])][0]
    # inductor's C++ kernels take their OpenMP thread count when they are compiled: compile with the most used
    threads = max(int(v.rsplit("-", 1)[1].rstrip("t")) for v in variants)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    encoders = variant_encoders(args.model, precisions, args.batch_size, warm_text=first)
    print(f"loaded {len(encoders)} encoders in {time.perf_counter() - started:.1f} s")
    timed = {p: partial(_encode_one, encoder) for p, encoder in encoders.items()}
    if args.e2e_index:
        from echo_splade.client import ConnectionConfig, connect
        from echo_splade.connector import QueryVectorCache, SparseRetriever

        backend = connect(ConnectionConfig(urls=(args.e2e_url,), timeout=120))
        for p, encoder in encoders.items():
            retriever = SparseRetriever(backend, args.e2e_index, encoder=encoder, query_cache=QueryVectorCache(0))
            timed[p] = partial(_search_one, retriever)
        print(f"timed: SparseRetriever.search(k=10) on {args.e2e_index} ({backend.count(args.e2e_index)} docs)")
    for corpus in corpora:
        folder = REPO.parent / "shared" / "data" / corpus
        texts = [x for _, _, x in sample_texts("query", args.docs, folder)]
        tokens = [len(encoders["fp32"].tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        for p in precisions:
            for text in texts[:2]:
                timed[p](text)  # warm-up
        spent: dict[str, list[float]] = {v: [] for v in variants}
        vectors: dict[str, list] = {p: [None] * len(texts) for p in precisions}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for i, text in enumerate(texts):
                for name in variants[i % len(variants) :] + variants[: i % len(variants)]:
                    precision, threads = name.rsplit("-", 1)
                    torch.set_num_threads(int(threads.rstrip("t")))
                    started = time.perf_counter()
                    vectors[precision][i] = timed[precision](text)
                    spent[name].append((time.perf_counter() - started) * 1000.0)
            loads.append(os.getloadavg()[0])
        torch.set_num_threads(1)
        for p in precisions:
            if args.e2e_index or any(v is None for v in vectors[p]):
                vectors[p] = encoders[p].encode(texts, "query", top_k=256)
        print(
            f"{corpus}: {len(texts)} queries one at a time (median {statistics.median(tokens):.0f} tokens, max "
            f"{max(tokens)}), {args.repeats} rotated passes, load average {min(loads):.1f}-{max(loads):.1f}"
        )
        p50s = {name: float(np.percentile(spent[name], 50)) for name in variants}
        for name in variants:
            precision, threads = name.rsplit("-", 1)
            p50, p90 = np.percentile(spent[name], [50, 90])
            ref = f"fp32-{threads}"
            ratio = f"{p50s[ref] / p50:.2f}x {ref}" if ref in p50s else ""
            agree = agreement(vectors["fp32"], vectors[precision])
            print(
                f"  {name:28} p50 {p50:7.1f} ms  p90 {p90:7.1f} ms  ({p50s[variants[0]] / p50:.2f}x {variants[0]}; "
                f"{ratio})  cos mean {agree['cos_mean']:.4f} min {agree['cos_min']:.4f} "
                f"top16 {agree['top16_overlap']:.1%}"
            )


def _encode_one(encoder, text: str):
    return encoder.encode([text], "query", top_k=256)[0]


def _search_one(retriever, text: str) -> None:
    retriever.search(text, k=10)


def query_ndcg(args) -> None:
    """nDCG@10 of the index's ``--ndcg-split`` queries encoded by each variant (the documents stay as indexed).

    ``--ndcg-index A,B``: the same for each index (e.g. B holds the same documents encoded by ``ingest --int8``);
    every row is compared with fp32 queries on the first index."""
    import numpy as np
    import torch
    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import SparseRetriever
    from echo_splade.encoder import read_beir_qrels, read_beir_queries

    torch.set_num_threads(1)
    precisions = sorted({v.rsplit("-", 1)[0] for v in args.variants.split(",")})
    encoders = variant_encoders(args.model, precisions, args.batch_size)
    qrels = read_beir_qrels(args.ndcg_corpus / "qrels" / f"{args.ndcg_split}.tsv")
    queries = read_beir_queries(args.ndcg_corpus / "queries.jsonl", ids=qrels)
    backend = connect(ConnectionConfig(urls=(args.ndcg_url,), timeout=120))
    indexes = args.ndcg_index.split(",")
    vectors = {p: e.encode(list(queries.values()), "query", top_k=256) for p, e in encoders.items()}
    per_query = {}
    for index in indexes:
        for precision, encoder in encoders.items():
            retriever = SparseRetriever(backend, index, encoder=encoder, mode="llm")
            run = {}
            for qid, text in queries.items():
                run[qid] = {h.id: float(h.score) for h in retriever.search(text, k=10)} or {"__none__": 0.0}
            # per query (the same Qrels, so the same query order for every row): the paired difference's spread
            per_query[index, precision] = np.asarray(
                evaluate(Qrels({q: qrels[q] for q in queries}), Run(run), "ndcg@10", return_mean=False)
            )
    base = per_query[indexes[0], "fp32"]
    print(
        f"{len(queries)} {args.ndcg_split} queries, query top-k 64; vs fp32 queries on {indexes[0]}: the mean paired "
        "difference +- its standard error, queries changed"
    )
    for index in indexes:
        print(f"{index} ({backend.count(index)} docs)")
        for precision in precisions:
            agree = agreement(vectors["fp32"], vectors[precision])
            diff = per_query[index, precision] - base
            se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
            print(
                f"  {precision:12} nDCG@10 {per_query[index, precision].mean():.4f} ({diff.mean():+.4f} +- {se:.4f}; "
                f"{int((np.abs(diff) > 1e-9).sum())} queries changed); "
                f"query cosine vs fp32 mean {agree['cos_mean']:.4f} min {agree['cos_min']:.4f}"
            )
    backend.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="echo-splade-smollm2-135m")
    parser.add_argument("--kind", choices=["document", "query"], default="document")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--docs", type=int, default=12, help="texts in the sample")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (ingest's default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32-2t,fp32-1t,int8-1t,int8-2t", help="comma-separated")
    parser.add_argument(
        "--study", action="store_true", help="Only the int8 study: activation outliers per layer, int8 variants."
    )
    parser.add_argument("--study-skip", type=int, default=8, help="Worst-outlier layers kept fp32 in one variant.")
    parser.add_argument("--study-only-per-token", action="store_true", help="The study's Int8Linear variants only.")
    parser.add_argument(
        "--latency", action="store_true", help="Only per-query latency of --variants on --latency-corpora queries."
    )
    parser.add_argument("--latency-corpora", default="scifact,arguana", help="../shared/data folders.")
    parser.add_argument(
        "--ndcg-index", help="Only nDCG@10 of --variants' query vectors on this index's --ndcg-split queries."
    )
    parser.add_argument("--e2e-index", help="With --latency: time SparseRetriever.search on this index instead.")
    parser.add_argument("--e2e-url", default="http://127.0.0.1:9200")
    parser.add_argument("--ndcg-url", default="http://127.0.0.1:9200")
    parser.add_argument("--ndcg-corpus", type=Path, help="BEIR folder of --ndcg-index (queries, qrels).")
    parser.add_argument(
        "--ndcg-split", default="test", help="Qrels split of --ndcg-corpus (dev to choose, test to report)."
    )
    args = parser.parse_args(argv)

    import torch

    from echo_splade.encoder import EchoSpladeEncoder, document_text

    if args.latency:
        latency(args)
        return 0
    if args.ndcg_index:
        query_ndcg(args)
        return 0
    records = sample_texts(args.kind, args.docs, args.corpus)
    texts = [document_text(t, x) if args.kind == "document" else x for _, t, x in records]
    if args.study:
        print(f"{args.model}: {len(texts)} {args.corpus.name} {args.kind} texts, load average {os.getloadavg()[0]:.1f}")
        study(args, texts)
        return 0
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
