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

Searches (``--searches``, every one on every configuration): ``Q`` (``llm`` mode with the ``Q`` heaviest query
terms, ``all``: every term; no two-phase) or ``Q/R/W`` (the same with two-phase search, ``TwoPhase(prune_ratio=R,
window_factor=W)``); prefixed ``if:``, the same in ``inference-free`` mode (no model: the query's tokens weighted by
IDF over that index). The reference of the nDCG@10 loss ("vs ref") and of "x ref" is exhaustive scoring of the
unpruned vectors (``none``, search ``all``; else the first search on ``none``); ``if:`` rows are compared with the
first ``if:`` search on ``none``. BM25 asks what ``SparseRetriever.search`` asks (``size`` 10, the whole ``_source``,
``track_total_hits: false``), on the unpruned index. ``--reuse`` searches the indexes a ``--keep`` run left
(no writes timed); ``--no-merge`` leaves them as written (several segments).

Configurations (``--configs``): ``none`` (the stored vectors as they are: the reference), ``top-k:N`` (the N largest
weights per document), ``mass:S`` (the largest weights until they hold the share S of the document's total weight). Both prune with ``encoder.prune_weights``,
the function the ingest applies (``IngestJob(doc_mass=)``, ``echo-splade ingest --doc-mass``). Choose on the dev
split (SciFact: ``train``), report on ``test``:

    python benchmarks/doc_pruning.py --url http://127.0.0.1:9430 --split train --limit 300
    python benchmarks/doc_pruning.py --url http://127.0.0.1:9430 --split test
    # pruning and two-phase together, inference-free too (issue 17's <= 1.5x BM25 p50 target):
    python benchmarks/doc_pruning.py --url http://127.0.0.1:9400 --split train --limit 300 --configs none,mass:0.8 \
        --searches all,64,all/0.4/5,64/0.4/5,if:64,if:64/0.4/5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

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


def search_plan(item: str) -> tuple[str, str, Optional[int], Optional[tuple[float, float]]]:
    """``(row label, mode, query top-k or None for all, (ratio, window) or None)`` of one ``--searches`` item."""
    mode = "inference-free" if item.startswith("if:") else "llm"
    top_k, *two_phase = item.removeprefix("if:").split("/")
    if len(two_phase) not in (0, 2) or not (top_k == "all" or top_k.isdigit()):
        raise ValueError(f"search {item!r}: expected [if:]Q or [if:]Q/R/W with Q a number or 'all'")
    plan = (float(two_phase[0]), float(two_phase[1])) if two_phase else None
    label = ("if " if mode == "inference-free" else "") + f"q {top_k}"
    label += f" 2-phase {two_phase[0]}/{two_phase[1]}" if plan else ""
    return label, mode, None if top_k == "all" else int(top_k), plan


def store_bytes(backend, name: str) -> int:
    return backend.request("GET", f"/{name}/_stats/store")["indices"][name]["primaries"]["store"]["size_in_bytes"]


def build_index(backend, name: str, mapping: dict, sources: list[tuple[str, str]], merge: bool = True) -> dict:
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
    if merge:
        backend.request("POST", f"/{name}/_forcemerge", params={"max_num_segments": 1})
        backend.refresh(name)  # releases the merged-away segments' files before the store is measured
    merge_s = time.perf_counter() - started
    if written != len(sources):
        raise RuntimeError(f"{name}: wrote {written} of {len(sources)} documents")
    return {"write_s": write_s, "merge_s": merge_s, "bytes": store_bytes(backend, name)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9200", help="The node the pruned indexes go to.")
    parser.add_argument("--source-url", default="http://127.0.0.1:9290", help="Node holding the source (read only).")
    parser.add_argument("--source-index", default="q-scifact-echo-splade-bert-tiny-v1")
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (queries, qrels).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="Use only the first N queries.")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument(
        "--searches",
        default="64",
        help="Comma-separated: Q (query terms, 'all': every one) or Q/R/W (two-phase); prefix if: inference-free.",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="Keep the indexes afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Search the indexes a --keep run left; no writes.")
    parser.add_argument("--no-merge", action="store_true", help="Do not force-merge the written indexes.")
    args = parser.parse_args(argv)

    from ranx import Qrels, Run, evaluate

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import Hit, Hybrid, SparseRetriever, TwoPhase

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
    for r in range(0 if args.reuse else args.repeats):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for config in order:
            builds[config].append(
                build_index(
                    backend,
                    names[config],
                    {**mapping, "_meta": metas[config]},
                    sources[config],
                    merge=not args.no_merge,
                )
            )
        for config in configs:
            write_ratio[config].append(builds[config][-1]["write_s"] / builds["none"][-1]["write_s"])
    if args.reuse:
        for config in configs:
            if backend.count(names[config]) != len(docs):
                raise SystemExit(f"--reuse: {names[config]} does not hold the {len(docs)} documents; run with --keep")
            builds[config].append({"write_s": float("nan"), "bytes": store_bytes(backend, names[config])})
            write_ratio[config].append(float("nan"))
    segments = {
        c: len(backend.request("GET", f"/_cat/segments/{names[c]}", params={"format": "json"})) for c in configs
    }

    queries, qrels = load_queries(args.corpus, args.split)
    items = list(queries.items())[: args.limit]
    qrels = {q: qrels[q] for q, _ in items}
    plans = [search_plan(item) for item in args.searches.split(",")]
    probe = SparseRetriever(backend, names["none"], mode="llm", query_top_k=None)
    encoder = probe.encoder
    vectors = {text: encoder.encode_queries([text], top_k=None)[0] for _, text in items}
    cached = CachedEncoder(encoder, vectors)
    lexical = Hybrid()

    def bm25(text: str) -> list:
        # the same request as SparseRetriever.search's: size, the whole _source, no hit count
        body = {"query": lexical.bm25_clause(text), "size": 10, "_source": True, "track_total_hits": False}
        return [Hit(id=h["_id"], score=h["_score"]) for h in backend.search(names["none"], body)["hits"]["hits"]]

    def retriever(index: str, mode: str = "llm", top_k: Optional[int] = 64, plan=None):
        two_phase = TwoPhase(prune_ratio=plan[0], window_factor=plan[1]) if plan else False
        encoder_option = {"encoder": cached} if mode == "llm" else {}
        r = SparseRetriever(backend, index, mode=mode, query_top_k=top_k, two_phase=two_phase, **encoder_option)
        for _, text in items:
            r.encode_query(text)  # fills the memo (inference-free: the document frequencies): rows time the search
        return lambda text: r.search(text, k=10)

    systems: dict[str, Callable] = {"bm25 (unpruned index)": bm25}
    row_config: dict[str, str] = {}
    reference: dict[str, str] = {}
    llm_plans = [p for p in plans if p[1] == "llm"]
    if_plans = [p for p in plans if p[1] == "inference-free"]
    exhaustive = "none q all" if any(t is None and p is None for _, _, t, p in llm_plans) else ""
    references = {
        "llm": exhaustive or (f"none {llm_plans[0][0]}" if llm_plans else ""),
        "inference-free": f"none {if_plans[0][0]}" if if_plans else "",
    }
    for config in configs:
        for label, mode, top_k, plan in plans:
            name = f"{config} {label}"
            systems[name], row_config[name] = retriever(names[config], mode, top_k, plan), config
            reference[name] = references[mode]
    order_names = list(systems)
    latency, results = rotated_runs(systems, items, args.repeats)
    ndcg = {n: float(evaluate(Qrels(qrels), Run(results[n]), "ndcg@10")) for n in order_names}

    print(
        f"source {args.source_index} ({len(docs)} docs, model {mapping['_meta'].get('model')}, stored pruning "
        f"{mapping['_meta'].get('doc_pruning')}); {backend.version_string}; {len(items)} {args.split} queries "
        f"(median {statistics.median(len(v.indices) for v in vectors.values()):.0f} llm query terms); "
        f"{args.repeats} rotated search passes"
        + ("" if args.reuse else f" and writes per configuration ({'not ' if args.no_merge else ''}force-merged)")
        + "; segments: "
        + ", ".join(f"{c} {n}" for c, n in segments.items())
    )
    ref_size = statistics.median(x["bytes"] for x in builds["none"])
    bm25_p50 = float(np.percentile(latency["bm25 (unpruned index)"], 50))
    header = (
        f"{'configuration / search':<30} {'terms/doc':>9} {'store MB':>9} {'x size':>7} {'write s':>8} "
        f"{'x write':>8} {'p50 ms':>7} {'x ref':>6} {'x BM25':>7} {'p99 ms':>7} {'nDCG@10':>8} {'vs ref':>8}"
    )
    print(header)
    for name in order_names:
        p50, p99 = np.percentile(latency[name], [50, 99])
        config = row_config.get(name)
        if config is not None:
            b = builds[config]
            size = statistics.median(x["bytes"] for x in b)
            cols = (
                f"{statistics.mean(terms[config]):9.1f} {size / 2**20:9.2f} {size / ref_size:7.3f} "
                f"{statistics.median(x['write_s'] for x in b):8.2f} {statistics.median(write_ratio[config]):8.3f}"
            )
            ref = reference[name]
            ref_cols = f"{p50 / np.percentile(latency[ref], 50):6.2f}"
            loss = f"{ndcg[name] - ndcg[ref]:+8.4f}"
        else:
            cols = f"{'':>9} {'':>9} {'':>7} {'':>8} {'':>8}"
            ref_cols, loss = f"{'':>6}", f"{'':>8}"
        print(f"{name:<30} {cols} {p50:7.1f} {ref_cols} {p50 / bm25_p50:7.2f} {p99:7.1f} {ndcg[name]:8.4f} {loss}")
    print("reference of each row (x ref, vs ref): " + ", ".join(sorted(set(reference.values()))))
    if not args.reuse:
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
