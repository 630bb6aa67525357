"""Choose the query-side defaults on DEV data: query top-k, hybrid fusion method and sparse weight.

For one dev split and one index (an encoder's vectors, ingested e.g. by `echo-splade eval`), each query is
encoded ONCE (all terms), then:

- for each query top-k: the sparse search runs in the cluster with the top-k terms (`SparseRetriever`,
  mode ``tokens``: the same clause the ``llm`` mode sends);
- the BM25 list and the sparse list (top 100 each, the connector's ``Hybrid.candidates``) are fetched once and
  fused with every candidate fusion by ``Hybrid.fuse`` -- the very function ``SparseRetriever.search(hybrid=...)``
  calls on the same two lists, so the figures equal what the connector would return.

Refuses test splits. Prints one table per dataset, and the mean over datasets.

    .venv/bin/python benchmarks/dev_choices.py --url http://127.0.0.1:9290 \
        --run ../shared/data/scifact:train:q-scifact-echo-splade-bert-tiny \
        --run ../shared/data/nfcorpus_processed:dev:q-nfcorpus_processed-echo-splade-bert-tiny \
        --run runs/dev/medquad:dev:q-medquad-echo-splade-bert-tiny
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

TOP_KS = (16, 32, 64, 128, None)
FUSIONS = [("rrf", 0.5)] + [("weighted", w) for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]


def evaluate(url: str, dataset_path: str, split: str, index: str, max_queries: int | None) -> dict[str, float]:
    import ranx

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import Hybrid, SparseRetriever
    from echo_splade.integration import EvalDataset

    if split == "test":
        raise SystemExit("dev_choices refuses test splits: choose on dev data only")
    data = EvalDataset(dataset_path, split=split, max_queries=max_queries)
    drop_self = data.detect_self_hits()
    backend = connect(ConnectionConfig(urls=(url,), timeout=120))
    llm = SparseRetriever(backend, index, mode="llm", query_top_k=None)
    tokens = {k: SparseRetriever(backend, index, mode="tokens", query_top_k=k) for k in TOP_KS}
    qrels = ranx.Qrels({q: {d: int(s) for d, s in docs.items()} for q, docs in data.qrels.items()})
    depth, candidates = 100, Hybrid().candidates
    runs: dict[str, dict[str, dict[str, float]]] = {}

    def add(name: str, qid: str, ranked: list[tuple[str, float]]) -> None:
        ids = [d for d, _ in ranked if not (drop_self and d == qid)][:depth]
        runs.setdefault(name, {})[qid] = {d: float(depth - r) for r, d in enumerate(ids)}

    for number, (qid, text) in enumerate(data.queries.items(), start=1):
        weights = llm.encode_query(text)  # all terms, once
        bm25 = backend.search(index, {"query": Hybrid().bm25_clause(text), "size": candidates, "_source": False})
        bm25_list = [(h["_id"], float(h["_score"] or 0.0)) for h in bm25["hits"]["hits"]]
        add("bm25", qid, bm25_list)
        for k, retriever in tokens.items():
            hits = retriever.search(weights, k=candidates)
            sparse_list = [(h.id, h.score) for h in hits]
            add(f"sparse top-k {k or 'all'}", qid, sparse_list)
            if k == 64:  # the fusion sweep on the connector's default query top-k
                for method, w in FUSIONS:
                    fused = Hybrid(method=method, sparse_weight=w).fuse(bm25_list, sparse_list)
                    add(f"hybrid {method} {w}", qid, [(d, s) for d, s, _ in fused])
        if number % 100 == 0:
            print(f"  {dataset_path} {number}/{len(data)} queries", file=sys.stderr)
    backend.close()
    return {
        name: float(ranx.evaluate(qrels, ranx.Run(run), "ndcg@10", make_comparable=True)) for name, run in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--run", action="append", required=True, help="DATASET:SPLIT:INDEX (repeatable)")
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--output", type=Path, help="JSON with every figure")
    args = parser.parse_args()
    results = {}
    for spec in args.run:
        dataset, split, index = spec.rsplit(":", 2)
        results[spec] = evaluate(args.url, dataset, split, index, args.max_queries)
    found = list(next(iter(results.values())))
    names = [n for prefix in ("bm25", "sparse", "hybrid") for n in found if n.startswith(prefix)]
    width = max(len(n) for n in names)
    header = "  ".join(Path(s.split(":")[0]).name[:12].rjust(12) for s in results)
    print(f"{'nDCG@10 (dev)'.ljust(width)}  {header}  {'mean'.rjust(7)}")
    for name in names:
        values = [results[s][name] for s in results]
        print(f"{name.ljust(width)}  " + "  ".join(f"{v:12.4f}" for v in values) + f"  {statistics.mean(values):7.4f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
