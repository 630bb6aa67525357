"""Query latency and quality of BM25, sparse (several query top-k) and hybrid on one BEIR collection.

Needs an existing echo-splade index of the collection (``echo-splade ingest``). Queries are encoded
once with the index's model (``--model`` overrides); each configuration then runs every test
query once, sequentially from one client, after a short warm-up, and the script prints
p50/p95/p99 latency (ms, client-side wall time of the search call), QPS (queries / total
seconds) and nDCG@10 (ranx). Query encoding time is reported on its own line: the sparse
rows measure the cluster side only (the same pre-encoded query, pruned to each top-k), with the
connector's other defaults (two-phase search: ``SparseRetriever.search``).

    python benchmarks/query.py --index scifact --corpus /work/shared/data/scifact
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def load_queries(corpus: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The judged queries of one split and their judgments (the encoder's BEIR reader)."""
    from echo_splade.encoder import read_beir_qrels, read_beir_queries

    qrels = read_beir_qrels(corpus / "qrels" / f"{split}.tsv")
    queries = read_beir_queries(corpus / "queries.jsonl", ids=qrels)
    return queries, {q: r for q, r in qrels.items() if q in queries}


class CachedEncoder:
    """The query encoder with every benchmark query encoded beforehand, so rows time the cluster side.

    ``encode_queries`` prunes like the encoder (``top_k`` largest weights); pruned vectors are
    memoised, and :func:`main` fills the memo for each configuration before timing it.
    """

    def __init__(self, encoder, vectors):
        self.encoder, self.vectors, self.pruned = encoder, vectors, {}
        self.model_id, self.model_rev = encoder.model_id, encoder.model_rev

    def encode_queries(self, texts, top_k=None, min_weight=None):
        return [self._pruned(t, top_k) for t in texts]

    def _pruned(self, text, top_k):
        key = (text, top_k)
        if key not in self.pruned:
            vec = self.vectors[text]
            pairs = sorted(zip(vec.values, vec.indices), reverse=True)[:top_k]
            pairs.sort(key=lambda p: p[1])
            self.pruned[key] = type(vec)([i for _, i in pairs], [v for v, _ in pairs])
        return self.pruned[key]

    def tokens(self, vector):
        return self.encoder.tokens(vector)


def timed(fn, items, warmup: int):
    for item in items[:warmup]:
        fn(item)
    latencies, results = [], {}
    start = time.perf_counter()
    for qid, query in items:
        t0 = time.perf_counter()
        results[qid] = fn((qid, query))
        latencies.append((time.perf_counter() - t0) * 1000.0)
    total = time.perf_counter() - start
    return latencies, total, results


def rotated_runs(systems, items, repeats: int, warmup: int = 10):
    """Search every query with every system, the order rotated per query (query 1: A B C ..., query 2: B C ... A)
    and the whole pass repeated ``repeats`` times, after ``warmup`` queries through every system: load from
    other jobs hits every system alike. ``systems``: ``{name: search(text) -> hits}``; ``items``: ``[(qid,
    text)]``. Returns ``(latency ms per system, {system: {qid: {doc_id: score}}})`` (an empty answer becomes
    ``{"__none__": 0.0}``, which ranx accepts)."""
    names = list(systems)
    for _, text in items[:warmup]:
        for name in names:
            systems[name](text)
    latency: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, dict] = {n: {} for n in names}
    for _ in range(repeats):
        for i, (qid, text) in enumerate(items):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                started = time.perf_counter()
                hits = systems[name](text)
                latency[name].append((time.perf_counter() - started) * 1000.0)
                results[name][qid] = {h.id: float(h.score) for h in hits} or {"__none__": 0.0}
    return latency, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="An ingested echo-splade index (alias) of the collection.")
    parser.add_argument(
        "--corpus", default="/work/shared/data/scifact", type=Path, help="BEIR folder (queries, qrels)."
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", help="Query encoder [default: the model in the index _meta].")
    parser.add_argument("--adapter")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--top-ks", default="16,32,64,128,all", help="Query top-k values of the sparse rows.")
    parser.add_argument("--hybrid", default="rrf,weighted", help="Hybrid rows: comma-separated of rrf, weighted.")
    parser.add_argument("--hybrid-top-k", default="64", help="Query top-k of the hybrid row.")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--limit", type=int, help="Use only the first N queries.")
    args = parser.parse_args(argv)

    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import Hit, Hybrid, SparseRetriever

    queries, qrels = load_queries(args.corpus, args.split)
    items = list(queries.items())[: args.limit]
    qrels = {q: qrels[q] for q, _ in items}
    backend = connect(ConnectionConfig(urls=(args.url,), timeout=120))
    n_docs = backend.count(args.index)

    llm = SparseRetriever(backend, args.index, encoder=args.model, adapter=args.adapter, mode="llm", query_top_k=None)
    encoder = llm.encoder
    encode_ms, vectors = [], {}
    for _qid, text in items:
        t0 = time.perf_counter()
        vectors[text] = encoder.encode_queries([text], top_k=None)[0]
        encode_ms.append((time.perf_counter() - t0) * 1000.0)
    cached = CachedEncoder(encoder, vectors)

    def run_to_ranx(results):
        return Run({qid: {h.id: float(h.score) for h in hits} or {"__none__": 0.0} for qid, hits in results.items()})

    lexical = Hybrid()  # the connector's BM25 clause (multi_match over title and text)

    def bm25(item):
        resp = backend.search(
            args.index,
            {
                "query": lexical.bm25_clause(item[1]),
                "size": 10,
                "_source": True,  # as SparseRetriever.search asks
                "track_total_hits": False,
            },
        )
        return [Hit(id=h["_id"], score=h["_score"]) for h in resp["hits"]["hits"]]

    def top_k_of(value: str):
        return None if value.strip() == "all" else int(value)

    configs = [("bm25", bm25, None)]
    for value in args.top_ks.split(","):
        r = SparseRetriever(backend, args.index, encoder=cached, mode="llm", query_top_k=top_k_of(value))
        configs.append((f"sparse top-k {value.strip()}", lambda item, r=r: r.search(item[1], k=10), r))
    h = SparseRetriever(backend, args.index, encoder=cached, mode="llm", query_top_k=top_k_of(args.hybrid_top_k))
    for method in args.hybrid.split(","):
        fusion = Hybrid(method=method.strip())
        configs.append(
            (
                f"hybrid {fusion.method} (top-k {args.hybrid_top_k})",
                lambda item, fusion=fusion: h.search(item[1], k=10, hybrid=fusion),
                h,
            )
        )
    rows = []

    terms = {text: len(v) for text, v in vectors.items()}
    print(
        f"index {args.index}: {n_docs} docs, engine {backend.version_string}, clause limit {llm.clause_limit}; "
        f"model {getattr(encoder, 'model_id', '?')}; {len(items)} {args.split} queries "
        f"(median {statistics.median(terms.values()):.0f} non-zero query terms before pruning)"
    )
    print(
        f"query encoding (not in the rows below): p50 {np.percentile(encode_ms, 50):.1f} ms, "
        f"p95 {np.percentile(encode_ms, 95):.1f} ms"
    )
    print(f"hybrid: {Hybrid()} (client-side fusion: one _msearch + one _mget)")
    print(f"{'configuration':<28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'QPS':>8} {'nDCG@10':>8}")
    for name, fn, prepare in configs:
        if prepare is not None:
            for _, text in items:
                prepare.encode_query(text)  # fills the encoder memo: rows time the cluster side only
        latencies, total, results = timed(fn, items, args.warmup)
        ndcg = evaluate(Qrels(qrels), run_to_ranx(results), "ndcg@10")
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        rows.append((name, p50, p95, p99, len(items) / total, ndcg))
        print(f"{name:<28} {p50:8.1f} {p95:8.1f} {p99:8.1f} {len(items) / total:8.1f} {ndcg:8.4f}", flush=True)
    bm25_p50 = rows[0][1]
    for name, p50, *_ in rows[1:]:
        print(f"{name}: p50 = {p50 / bm25_p50:.2f} x BM25 p50")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
