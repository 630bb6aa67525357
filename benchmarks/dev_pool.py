"""A pooled dev collection: the first N judged queries of a split, over only their judged documents and BM25's top K.

Encoding a whole collection with an LLM encoder takes hours on a CPU (NFCorpus: 3,633 documents at ~0.2-0.5
documents/s here). To compare encoders on a dev split within one sitting, this writes a smaller BEIR folder:

- ``queries.jsonl``: the first ``--queries`` queries of ``qrels/<split>.tsv`` in file order (no choosing);
- ``qrels/<split>.tsv``: all their judgments, unchanged;
- ``corpus.jsonl``: the union of their judged documents and BM25's top ``--bm25-depth`` hits for each of them,
  BM25 being the cluster's ``multi_match`` over title and text on an index that already holds the full collection.

Every system evaluated on the folder ranks the same pool, so the comparison is fair between them, but the
absolute figures are those of re-ranking a pool (judged documents are always in it), higher than on the full
collection: use them to choose, and report full-collection figures where they exist.

    python benchmarks/dev_pool.py --url URL --dataset ../shared/data/nfcorpus_processed --split dev \
        --bm25-index q-nfcorpus_processed-echo-splade-bert-tiny --queries 30 --bm25-depth 20 \
        --output runs/dev/nfcorpus-pool
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder of the full collection.")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--bm25-index", required=True, help="An index holding the full collection's text.")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--bm25-depth", type=int, default=20)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from echo_splade.client import ConnectionConfig, connect

    with open(args.dataset / "qrels" / f"{args.split}.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    order: list[str] = []
    judged: dict[str, set[str]] = {}
    for row in rows:
        qid = row["query-id"]
        if qid not in judged:
            order.append(qid)
            judged[qid] = set()
        judged[qid].add(row["corpus-id"])
    chosen = order[: args.queries]
    queries = {}
    with open(args.dataset / "queries.jsonl") as handle:
        for line in handle:
            query = json.loads(line)
            if query["_id"] in chosen:
                queries[query["_id"]] = query
    missing = [qid for qid in chosen if qid not in queries]
    if missing:
        raise SystemExit(f"queries.jsonl has no text for judged queries {missing[:5]}")

    backend = connect(ConnectionConfig(urls=(args.url,), timeout=60))
    pool: set[str] = set()
    for qid in chosen:
        pool |= judged[qid]
        body = {
            "size": args.bm25_depth,
            "_source": False,
            "query": {"multi_match": {"query": queries[qid]["text"], "fields": ["title", "text"]}},
        }
        pool |= {hit["_id"] for hit in backend.search(args.bm25_index, body)["hits"]["hits"]}

    out = args.output
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    kept = 0
    with open(args.dataset / "corpus.jsonl") as source, open(out / "corpus.jsonl", "w") as corpus:
        for line in source:
            if json.loads(line)["_id"] in pool:
                corpus.write(line if line.endswith("\n") else line + "\n")
                kept += 1
    with open(out / "queries.jsonl", "w") as handle:
        for qid in chosen:
            handle.write(json.dumps(queries[qid]) + "\n")
    with open(out / "qrels" / f"{args.split}.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["query-id", "corpus-id", "score"])
        for row in rows:
            if row["query-id"] in queries:
                writer.writerow([row["query-id"], row["corpus-id"], row["score"]])
    (out / "SOURCE.md").write_text(
        f"Pooled from {args.dataset} ({args.split}): first {len(chosen)} judged queries, their judged documents "
        f"and BM25's top {args.bm25_depth} on {args.bm25_index}; written by benchmarks/dev_pool.py. "
        "The source collection's licence applies.\n"
    )
    print(f"{len(chosen)} queries, {kept} documents (of {len(pool)} pooled ids) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
