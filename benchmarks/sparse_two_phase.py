"""Two-phase sparse search against exhaustive scoring and BM25 on one index: p50 latency and nDCG@10 (issue 17).

Queries are encoded once with the index's model (``llm`` mode, every term kept); each configuration then
searches every query. Configurations are interleaved per query (query 1: A B C ..., query 2: B C ... A) and the
whole pass is repeated ``--repeats`` times, so load from other jobs hits every configuration alike; latencies
are the client-side wall time of the search call (ms), pooled over the repeats. Rows:

- ``bm25``: the connector's BM25 clause;
- ``exhaustive``: every query term scores every document (``query_top_k=None``), the reference;
- ``top-k 64``: the connector's default query pruning;
- ``two-phase r/w``: phase 1 with the terms weighing >= r x the heaviest, phase 2 rescores the top
  ``10 x w`` hits with every term (``TwoPhase(prune_ratio=r, window_factor=w)``).

Run it on the dev split to choose, then on test to report:

    python benchmarks/sparse_two_phase.py --url URL --index scifact-bert-tiny --split train --limit 200
    python benchmarks/sparse_two_phase.py --url URL --index scifact-bert-tiny --split test
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from query import CachedEncoder, load_queries, rotated_runs  # benchmarks/query.py

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--index", required=True, help="An echo-splade index (alias) of the collection.")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (queries, qrels).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="Use only the first N queries.")
    parser.add_argument("--model", help="Query encoder [default: the model in the index _meta].")
    parser.add_argument("--ratios", default="0.2,0.3,0.4,0.6", help="Two-phase prune ratios.")
    parser.add_argument("--windows", default="5", help="Two-phase window factors (window = 10 x factor).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import Hit, Hybrid, SparseRetriever, TwoPhase

    queries, qrels = load_queries(args.corpus, args.split)
    items = list(queries.items())[: args.limit]
    qrels = {q: qrels[q] for q, _ in items}
    backend = connect(ConnectionConfig(urls=(args.url,), timeout=120))
    probe = SparseRetriever(backend, args.index, encoder=args.model, mode="llm", query_top_k=None)
    encoder = probe.encoder
    vectors = {text: encoder.encode_queries([text], top_k=None)[0] for _, text in items}
    cached = CachedEncoder(encoder, vectors)
    lexical = Hybrid()

    def bm25(text: str) -> list:
        # the same request as SparseRetriever.search's: size, the whole _source, no hit count
        body = {"query": lexical.bm25_clause(text), "size": 10, "_source": True, "track_total_hits": False}
        return [Hit(id=h["_id"], score=h["_score"]) for h in backend.search(args.index, body)["hits"]["hits"]]

    def retriever(**options):
        r = SparseRetriever(backend, args.index, encoder=cached, mode="llm", **options)
        for _, text in items:
            r.encode_query(text)  # fills the memo: rows time the cluster side only
        return lambda text: r.search(text, k=10)

    configs = {
        "bm25": bm25,
        "exhaustive": retriever(query_top_k=None, two_phase=False),
        "top-k 64": retriever(query_top_k=64, two_phase=False),
    }
    for ratio in args.ratios.split(","):
        for window in args.windows.split(","):
            plan = TwoPhase(prune_ratio=float(ratio), window_factor=float(window))
            configs[f"two-phase {ratio}/{window}"] = retriever(query_top_k=None, two_phase=plan)
    names = list(configs)
    latency, results = rotated_runs(configs, items, args.repeats)
    terms = [len(v) for v in vectors.values()]
    print(
        f"index {args.index}: {backend.count(args.index)} docs, {backend.version_string}; model "
        f"{encoder.model_id}; {len(items)} {args.split} queries (median {statistics.median(terms):.0f} query "
        f"terms), {args.repeats} interleaved passes"
    )
    ndcg = {n: evaluate(Qrels(qrels), Run(results[n]), "ndcg@10") for n in names}
    bm25_p50 = float(np.percentile(latency["bm25"], 50))
    print(f"{'configuration':<22} {'p50 ms':>8} {'p95 ms':>8} {'x BM25 p50':>11} {'nDCG@10':>8} {'vs exhaustive':>14}")
    for name in names:
        p50, p95 = np.percentile(latency[name], [50, 95])
        print(
            f"{name:<22} {p50:8.1f} {p95:8.1f} {p50 / bm25_p50:11.2f} {ndcg[name]:8.4f} "
            f"{ndcg[name] - ndcg['exhaustive']:+14.4f}"
        )
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
