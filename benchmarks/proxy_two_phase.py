"""Two-phase search through `echo-splade proxy` against the same proxy scoring exhaustively (issue 17).

Starts two `echo-splade proxy` subprocesses in front of the node, both rewriting INDEX in ``llm`` mode with the
index's model: one with ``--two-phase`` (the default of llm aliases), one with ``--no-two-phase``. Every query
of the split goes through both once first (each proxy encodes it and keeps the vector in its query cache, so
the timed requests measure rewriting and searching, not the model). Then the app's body (``match`` on
``text``, size 10) is sent for each query through each proxy and directly to the node as BM25, the order
rotated per query, the whole pass repeated ``--repeats`` times; beside them the two bodies the proxies send
(``SparseRetriever.rewrite_two_phase``, computed beforehand in this process) go directly to the node, which
separates the node's gain from the proxy's own work. Printed: p50 / p99 client-side latency (ms),
each proxy's p50 as a ratio to BM25's, nDCG@10 of each path, the paired per-query nDCG@10 difference two-phase
minus exhaustive +- its standard error, and how often the proxy fell back to exhaustive
(``X-Echo-Splade-Rewrite: rewritten; phase 1 fell short, exhaustive``).

    python benchmarks/proxy_two_phase.py --url URL --index q-scifact-echo-splade-smollm2-135m --split train --limit 100
    python benchmarks/proxy_two_phase.py --url URL --index q-scifact-echo-splade-smollm2-135m --split test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
from proxy import start_proxy  # benchmarks/proxy.py
from query import load_queries, rotated_runs  # benchmarks/query.py

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
PATHS = ("bm25 direct", "direct exhaustive", "direct two-phase", "proxy exhaustive", "proxy two-phase")


def app_body(text: str) -> dict:
    return {"size": 10, "_source": ["title"], "query": {"match": {"text": text}}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200", help="the node")
    parser.add_argument("--index", required=True, help="an echo-splade llm index (alias) of the collection")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (queries, qrels)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="use only the first N queries")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each proxy's encoder")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import SparseRetriever

    queries, qrels = load_queries(args.corpus, args.split)
    items = list(queries.items())[: args.limit]
    qrels = {q: qrels[q] for q, _ in items}
    common = ["--alias", args.index, "--mode", "llm", "--device", "cpu"]
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the subprocesses' torch thread pools
    procs = []
    try:
        for flag in ("--no-two-phase", "--two-phase"):
            procs.append(start_proxy(args.url, [*common, flag]))
        urls = {
            "bm25 direct": args.url,
            "direct exhaustive": args.url,
            "direct two-phase": args.url,
            "proxy exhaustive": procs[0][1],
            "proxy two-phase": procs[1][1],
        }
        backend = connect(ConnectionConfig(urls=(args.url,), timeout=120))
        retriever = SparseRetriever(backend, args.index, mode="llm")
        bodies: dict[str, dict[str, dict]] = {"direct exhaustive": {}, "direct two-phase": {}}
        for _, text in items:
            full, phased = retriever.rewrite_two_phase(app_body(text), field="text")
            bodies["direct exhaustive"][text], bodies["direct two-phase"][text] = full, phased or full
        payloads = {
            (path, text): json.dumps(bodies[path][text] if path in bodies else app_body(text)).encode()
            for path in PATHS
            for _, text in items
        }
        fell_back = [0]
        counting = [False]  # the warm-up's fall-backs are not counted
        with httpx.Client(timeout=300) as client:

            def system(path: str):
                def search(text: str) -> list[SimpleNamespace]:
                    r = client.post(
                        f"{urls[path]}/{args.index}/_search",
                        content=payloads[path, text],
                        headers={"content-type": "application/json"},
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status_code}: {r.text[:300]}")
                    status = r.headers.get("x-echo-splade-rewrite", "")
                    if path == "proxy two-phase":
                        if not status.startswith("rewritten"):
                            raise RuntimeError(f"the two-phase proxy did not rewrite: {status}")
                        fell_back[0] += counting[0] and "fell short" in status
                    hits = r.json()["hits"]["hits"]
                    return [SimpleNamespace(id=h["_id"], score=float(h["_score"] or 0.0)) for h in hits]

                return search

            systems = {path: system(path) for path in PATHS}
            started = time.monotonic()
            for _, text in items:  # warm-up: every query encoded once by each proxy (its query cache)
                for search in systems.values():
                    search(text)
            print(f"warm-up (encoding {len(items)} queries in each proxy): {time.monotonic() - started:.0f} s")
            counting[0] = True
            latency, results = rotated_runs(systems, items, args.repeats, warmup=0)
        backend.close()
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=30)

    ranx_qrels = Qrels(qrels)
    per_query = {p: evaluate(ranx_qrels, Run(results[p]), "ndcg@10", return_mean=False) for p in PATHS}
    ndcg = {p: float(np.mean(per_query[p])) for p in PATHS}
    diff = np.asarray(per_query["proxy two-phase"]) - np.asarray(per_query["proxy exhaustive"])
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    p50 = {p: statistics.median(latency[p]) for p in PATHS}
    print(
        f"{args.index}, {args.split}, {len(items)} queries x {args.repeats} repeats, one request at a time, "
        f"torch threads {args.threads} per proxy"
    )
    print(f"{'path':<18} {'p50 ms':>8} {'p99 ms':>8} {'x bm25':>7} {'nDCG@10':>8}")
    for p in PATHS:
        p99 = float(np.percentile(latency[p], 99))
        print(f"{p:<18} {p50[p]:8.2f} {p99:8.2f} {p50[p] / p50['bm25 direct']:7.2f} {ndcg[p]:8.4f}")
    ratio = p50["proxy two-phase"] / p50["proxy exhaustive"]
    direct = p50["direct two-phase"] / p50["direct exhaustive"]
    print(
        f"two-phase / exhaustive p50: proxy {ratio:.2f}x, direct {direct:.2f}x; nDCG@10 two-phase - exhaustive: {diff.mean():+.4f} +- {se:.4f}; "
        f"fell back to exhaustive: {fell_back[0]} of {len(items) * args.repeats}"
    )
    if args.report:
        report = {
            "index": args.index,
            "split": args.split,
            "queries": len(items),
            "repeats": args.repeats,
            "p50": p50,
            "ndcg@10": ndcg,
            "two_phase_minus_exhaustive": {"mean": float(diff.mean()), "se": se},
            "fell_back": fell_back[0],
        }
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
