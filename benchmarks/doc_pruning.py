"""Document-side pruning of stored sparse vectors: top-k vs weight-mass, against the unpruned index (issue 17).

The vectors come from an existing echo-splade index (``--source-url``/``--source-index``, read only: one scroll);
pruning is applied to the stored vectors, so nothing is re-encoded. Each configuration is written to its own index
on ``--url`` (``doc-pruning-<name>``): created with the source's mapping, bulk-written with the ingest's
``BulkWriter`` inside ``bulk_load_settings`` (refresh off, then one refresh, as ``echo-splade ingest`` does),
force-merged to one segment; its store size is read from ``_stats/store``. The writes are repeated ``--repeats``
times in rotated order (repeat r starts at configuration r), so every configuration sits next to the unpruned one
in time; each write's time is divided by the unpruned write of the same repeat, and the median ratio is shown.
Encoding is the same for every configuration (pruning happens after the model), so the ingest time that pruning can
change is the write.

Searches: the split's queries are encoded once with the index's model (``llm`` mode; ``--query-top-k`` terms, the
connector's default 64); per query every configuration runs once in rotated order, and the whole pass is repeated
``--repeats`` times. Latency: client-side wall time of ``SparseRetriever.search(k=10)`` (ms), pooled over the
repeats; BM25 (the connector's clause, on the unpruned index) is shown for scale. nDCG@10 by ranx.

Configurations (``--configs``): ``none`` (the stored vectors as they are: the reference), ``top-k:N`` (the N largest
weights per document), ``mass:S`` (the largest weights until they hold the share S of the document's total weight). Both prune with ``encoder.prune_weights``,
the function the ingest applies (``IngestJob(doc_mass=)``, ``echo-splade ingest --doc-mass``). Choose on the dev
split (SciFact: ``train``), report on ``test``:

    python benchmarks/doc_pruning.py --url http://127.0.0.1:9430 --split train --limit 300
    python benchmarks/doc_pruning.py --url http://127.0.0.1:9430 --split test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from query import CachedEncoder, load_queries, rotated_runs  # benchmarks/query.py

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_CONFIGS = "none,top-k:128,top-k:64,top-k:32,mass:0.95,mass:0.9,mass:0.8"


def read_source(backend, index: str) -> list[dict]:
    """Every document of ``index`` (``_id`` and ``_source``), by one scroll (read only)."""
    docs: list[dict] = []
    page = backend.request("POST", f"/{index}/_search", {"size": 1000, "sort": ["_doc"]}, params={"scroll": "2m"})
    while page["hits"]["hits"]:
        docs += [{"_id": h["_id"], "_source": h["_source"]} for h in page["hits"]["hits"]]
        page = backend.request("POST", "/_search/scroll", {"scroll": "2m", "scroll_id": page["_scroll_id"]})
    backend.request("DELETE", "/_search/scroll", {"scroll_id": [page["_scroll_id"]]})
    return docs


def pruner(config: str) -> tuple[Callable[[dict], dict], dict]:
    """``(prune(features) -> features, the _meta doc_pruning entry)`` for one ``--configs`` item."""
    from echo_splade.encoder import prune_weights

    kind, _, value = config.partition(":")
    if kind == "none":
        return (lambda weights: weights), {}
    if kind == "top-k":
        k = int(value)
        return (lambda weights: prune_weights(weights, top_k=k)), {"top_k": k}
    if kind == "mass":
        share = float(value)
        return (lambda weights: prune_weights(weights, mass=share)), {"mass": share}
    raise ValueError(f"configuration {config!r}: expected none, top-k:N or mass:S")


def build_index(backend, name: str, mapping: dict, sources: list[tuple[str, str]]) -> dict:
    """(Re)create ``name``, write ``sources`` (``(_id, JSON source)``), force-merge; time and size."""
    from echo_splade.ingest import BulkWriter
    from echo_splade.mappings import bulk_load_settings

    if backend.exists(name):
        backend.request("DELETE", f"/{name}")
    settings = {"number_of_shards": 1, "number_of_replicas": 0}
    backend.request("PUT", f"/{name}", {"settings": settings, "mappings": mapping})
    writer = BulkWriter(backend, name)
    started = time.perf_counter()
    with bulk_load_settings(backend, name):
        written = sum(ok for ok, _ in writer.streaming_bulk({"_id": i, "_source": s} for i, s in sources))
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    backend.request("POST", f"/{name}/_forcemerge", params={"max_num_segments": 1})
    backend.refresh(name)  # releases the merged-away segments' files before the store is measured
    merge_s = time.perf_counter() - started
    stats = backend.request("GET", f"/{name}/_stats/store")["indices"][name]["primaries"]["store"]
    if written != len(sources):
        raise RuntimeError(f"{name}: wrote {written} of {len(sources)} documents")
    return {"write_s": write_s, "merge_s": merge_s, "bytes": stats["size_in_bytes"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200", help="The node the pruned indexes go to.")
    parser.add_argument("--source-url", default="http://127.0.0.1:9290", help="Node holding the source (read only).")
    parser.add_argument("--source-index", default="q-scifact-echo-splade-bert-tiny-v1")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (queries, qrels).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="Use only the first N queries.")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--query-top-k", type=int, default=64, help="Query terms (0: all).")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="Keep the indexes afterwards.")
    args = parser.parse_args(argv)

    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import Hit, Hybrid, SparseRetriever

    source = connect(ConnectionConfig(urls=(args.source_url,), timeout=120))
    backend = connect(ConnectionConfig(urls=(args.url,), timeout=300))
    docs = read_source(source, args.source_index)
    mapping = source.get_mapping(args.source_index)[args.source_index]["mappings"]
    source.close()
    configs = args.configs.split(",")
    if configs[0] != "none":
        raise SystemExit("--configs must start with none (the reference)")
    names = {c: "doc-pruning-" + c.replace(":", "-").replace(".", "") for c in configs}
    terms: dict[str, list[int]] = {}
    sources: dict[str, list[tuple[str, str]]] = {}
    metas: dict[str, dict] = {}
    for config in configs:
        prune, meta = pruner(config)
        rows = []
        counts = []
        for doc in docs:
            src = dict(doc["_source"])
            src["sparse"] = prune(src["sparse"])
            counts.append(len(src["sparse"]))
            rows.append((doc["_id"], json.dumps(src, ensure_ascii=False, separators=(",", ":"))))
        sources[config], terms[config] = rows, counts
        metas[config] = {**mapping.get("_meta", {}), "doc_pruning": {**mapping["_meta"]["doc_pruning"], **meta}}

    builds: dict[str, list[dict]] = {c: [] for c in configs}
    write_ratio: dict[str, list[float]] = {c: [] for c in configs}
    for r in range(args.repeats):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for config in order:
            builds[config].append(
                build_index(backend, names[config], {**mapping, "_meta": metas[config]}, sources[config])
            )
        for config in configs:
            write_ratio[config].append(builds[config][-1]["write_s"] / builds["none"][-1]["write_s"])

    queries, qrels = load_queries(args.corpus, args.split)
    items = list(queries.items())[: args.limit]
    qrels = {q: qrels[q] for q, _ in items}
    query_top_k = args.query_top_k or None
    probe = SparseRetriever(backend, names["none"], mode="llm", query_top_k=None)
    encoder = probe.encoder
    vectors = {text: encoder.encode_queries([text], top_k=None)[0] for _, text in items}
    cached = CachedEncoder(encoder, vectors)
    lexical = Hybrid()

    def bm25(text: str) -> list:
        body = {"query": lexical.bm25_clause(text), "size": 10, "_source": False, "track_total_hits": False}
        return [Hit(id=h["_id"], score=h["_score"]) for h in backend.search(names["none"], body)["hits"]["hits"]]

    def retriever(index: str):
        r = SparseRetriever(backend, index, encoder=cached, mode="llm", query_top_k=query_top_k)
        for _, text in items:
            r.encode_query(text)  # fills the memo: rows time the cluster side only
        return lambda text: r.search(text, k=10)

    systems = {"bm25 (unpruned index)": bm25, **{c: retriever(names[c]) for c in configs}}
    order_names = list(systems)
    latency, results = rotated_runs(systems, items, args.repeats)
    ndcg = {n: float(evaluate(Qrels(qrels), Run(results[n]), "ndcg@10")) for n in order_names}

    print(
        f"source {args.source_index} ({len(docs)} docs, model {mapping['_meta'].get('model')}, stored pruning "
        f"{mapping['_meta'].get('doc_pruning')}); {backend.version_string}; {len(items)} {args.split} queries, "
        f"query top-k {query_top_k or 'all'}; {args.repeats} rotated writes and search passes per configuration"
    )
    ref = builds["none"]
    ref_p50, ref_p99 = np.percentile(latency["none"], [50, 99])
    header = (
        f"{'configuration':<22} {'terms/doc':>9} {'store MB':>9} {'x size':>7} {'write s':>8} {'x write':>8} "
        f"{'p50 ms':>7} {'x p50':>6} {'p99 ms':>7} {'x p99':>6} {'nDCG@10':>8} {'vs none':>8}"
    )
    print(header)
    for name in order_names:
        p50, p99 = np.percentile(latency[name], [50, 99])
        if name in builds:
            b = builds[name]
            size = statistics.median(x["bytes"] for x in b)
            cols = (
                f"{statistics.mean(terms[name]):9.1f} {size / 2**20:9.2f} "
                f"{size / statistics.median(x['bytes'] for x in ref):7.3f} "
                f"{statistics.median(x['write_s'] for x in b):8.2f} {statistics.median(write_ratio[name]):8.3f}"
            )
        else:
            cols = f"{'':>9} {'':>9} {'':>7} {'':>8} {'':>8}"
        print(
            f"{name:<22} {cols} {p50:7.1f} {p50 / ref_p50:6.2f} {p99:7.1f} {p99 / ref_p99:6.2f} "
            f"{ndcg[name]:8.4f} {ndcg[name] - ndcg['none']:+8.4f}"
        )
    print(
        "write s per repeat: "
        + "; ".join(f"{c} " + "/".join(f"{x['write_s']:.1f}" for x in builds[c]) for c in configs)
    )
    if not args.keep:
        for name in names.values():
            backend.request("DELETE", f"/{name}")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
