"""Ingest throughput: raw bulk indexing vs the full Ray pipeline, and index size on disk per document.

In one run against one node (default the local one at http://127.0.0.1:9200):

1. The corpus (default cranfield, ``--copies`` times with distinct ids) is encoded ONCE in this
   process with a tiny encoder (``tiny-mistral``, first 64-token window), giving precomputed
   vectors.
2. Raw bulk: opensearch-py ``helpers.parallel_bulk`` indexes exactly the documents the pipeline
   writes (same source, same mapping, same bulk-load settings).
3. Pipeline: ``IngestJob`` with an encode stage that serves the precomputed vectors (so encoding
   is not the bottleneck): reader -> encode actor -> writer actors -> driver. Throughput is given
   end to end (with Ray start-up, the model probe and actor start-up) and in steady state (from the
   first to the last acknowledged batch; the raw figure covers its whole run). The goal is
   steady state >= 0.8 x raw bulk.
4. Pipeline with the real tiny encoder on ``--encode-docs`` documents, end to end (encoding is
   the bottleneck on CPU; shown for scale).
5. Index size: ``_stats/store`` after a force-merge to one segment, bytes per document of the
   sparse index vs a BM25-only index (title and text only) of the same documents.

    python benchmarks/ingest.py [--url URL] [--corpus DIR] [--copies 4] [--writers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import tempfile
import time
import uuid
from pathlib import Path

from echo_splade.client import ConnectionConfig, connect
from echo_splade.ingest import CorpusReader, EncodeBatch, IngestJob, document_text
from echo_splade.mappings import IndexSpec, bulk_load_settings, document_source, model_name, provision

TINY = dict(model="tiny-mistral", max_length=64, encoder_options={"truncate": True})


class PrecomputedEncoder:
    """Serves vectors computed beforehand, keyed by document text (``tokens`` dicts stand in for vectors)."""

    def __init__(self, path: str):
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
        self.source, self.model_rev, self.vectors = payload["model"], payload["model_rev"], payload["vectors"]

    def encode_documents(self, texts, top_k=None, min_weight=None):
        return [self.vectors[t] for t in texts]

    def tokens(self, vector):
        return vector


class PrecomputedEncodeBatch(EncodeBatch):
    """The pipeline's encode stage with the model forward pass replaced by a lookup."""

    vectors_path = ""

    def load_encoder(self, model, **kwargs):
        return PrecomputedEncoder(self.vectors_path)


def build_corpus(source: Path, copies: int, target: Path) -> tuple[int, list[dict]]:
    """Valid records of ``source``, ``copies`` times with ids ``<id>~<k>``; returns (count, one copy)."""
    base = [r for r in CorpusReader(source) if not r["reason"]]
    with open(target, "w", encoding="utf-8") as fh:
        for k in range(copies):
            for r in base:
                fh.write(json.dumps({"_id": f"{r['doc_id']}~{k}", "title": r["title"], "text": r["text"]}) + "\n")
    return len(base) * copies, base


def precompute(base: list[dict], path: Path, threads: int) -> dict:
    import torch

    from echo_splade.encoder import EchoSpladeEncoder

    torch.set_num_threads(threads)
    encoder = EchoSpladeEncoder.from_pretrained(
        TINY["model"], device="cpu", batch_size=32, max_length=TINY["max_length"], **TINY["encoder_options"]
    )
    texts = sorted({document_text(r["title"], r["text"]) for r in base})
    started = time.perf_counter()
    vectors = encoder.encode_documents(texts, top_k=256, min_weight=1.1754944e-38)
    seconds = time.perf_counter() - started
    payload = {
        "model": model_name(encoder),
        "model_rev": encoder.model_rev,
        "vectors": {t: encoder.tokens(v) for t, v in zip(texts, vectors)},
    }
    with open(path, "wb") as fh:
        pickle.dump(payload, fh)
    return {
        "model": model_name(encoder),
        "model_rev": encoder.model_rev,
        "docs": len(texts),
        "seconds": seconds,
        "features": sum(len(v) for v in vectors) / len(vectors),
        "encoder_config": encoder.config,
    }


def raw_bulk(
    backend, url: str, index: str, corpus: Path, vectors: dict, info: dict, writers: int, chunk_docs: int
) -> tuple[int, float]:
    from opensearchpy import helpers

    provision(backend, IndexSpec.for_model(index, info["model"], info["model_rev"], info["encoder_config"]))

    def actions():
        with open(corpus, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                text = document_text(r["title"], r["text"])
                yield {
                    "_index": index,
                    "_id": r["_id"],
                    "_source": document_source(
                        r["_id"], r["title"], r["text"], vectors[text], model=info["model"], model_rev=info["model_rev"]
                    ),
                }

    from opensearchpy import OpenSearch

    # its own client with one pooled connection per bulk thread
    client = OpenSearch(hosts=[url], timeout=120, pool_maxsize=writers + 1)
    indexed = 0
    with bulk_load_settings(backend, index):
        started = time.perf_counter()
        for ok, _item in helpers.parallel_bulk(
            client,
            actions(),
            thread_count=writers,
            chunk_size=chunk_docs,
            max_chunk_bytes=10 * 1024 * 1024,
            raise_on_error=True,
        ):
            indexed += ok
        seconds = time.perf_counter() - started
    client.close()
    return indexed, seconds


def pipeline(
    conn,
    index: str,
    corpus: Path,
    writers: int,
    chunk_docs: int,
    threads: int,
    stage=EncodeBatch,
    limit=None,
    report_dir: Path = None,
):
    samples: list[tuple[float, int]] = []

    def progress(report):
        samples.append((time.perf_counter(), report.indexed))

    job = IngestJob(
        corpus,
        index,
        conn,
        batch_size=64,
        writers=writers,
        torch_threads=threads,
        writer_options={"max_chunk_docs": chunk_docs},
        encode_stage=stage,
        limit=limit,
        report_path=report_dir / f"{index}.json",
        **TINY,
    )
    report = job.run(progress=progress)
    steady = None
    if len(samples) >= 3:
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        steady = (n1 - n0) / (t1 - t0) if t1 > t0 else None
    return report, steady


def bm25_only(backend, index: str, corpus: Path, analyzer: str) -> int:
    from opensearchpy import helpers

    backend.request(
        "PUT",
        f"/{index}",
        body={
            "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
            "mappings": {
                "dynamic": False,
                "properties": {
                    "title": {"type": "text", "analyzer": analyzer},
                    "text": {"type": "text", "analyzer": analyzer},
                    "doc_id": {"type": "keyword"},
                },
            },
        },
    )

    def actions():
        with open(corpus, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                yield {
                    "_index": index,
                    "_id": r["_id"],
                    "_source": {"doc_id": r["_id"], "title": r["title"], "text": r["text"]},
                }

    ok, _ = helpers.bulk(backend.raw, actions(), chunk_size=1000)
    return ok


def store_bytes(backend, index: str) -> tuple[int, int]:
    backend.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": 1})
    backend.refresh(index)
    stats = backend.request("GET", f"/{index}/_stats/store,docs")["_all"]["primaries"]
    return int(stats["store"]["size_in_bytes"]), int(stats["docs"]["count"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("ECHO_SPLADE_URL", "http://127.0.0.1:9200"))
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/data/cranfield"))
    parser.add_argument("--copies", type=int, default=4, help="copies of the corpus (distinct ids)")
    parser.add_argument("--writers", type=int, default=2, help="bulk threads (raw) and writer actors (pipeline)")
    parser.add_argument("--chunk-docs", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the encoder")
    parser.add_argument("--encode-docs", type=int, default=1400, help="documents for the real-encoder run (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark indices")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import ray

    conn = ConnectionConfig(urls=(args.url,), timeout=120)
    backend = connect(conn)
    tag = uuid.uuid4().hex[:6]
    names = {k: f"bench-ingest-{k}-{tag}" for k in ("raw", "pipe", "enc", "bm25")}
    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        corpus = scratch / "corpus.jsonl"
        total, base = build_corpus(args.corpus, args.copies, corpus)
        vectors_path = scratch / "vectors.pkl"
        info = precompute(base, vectors_path, args.threads)
        with open(vectors_path, "rb") as fh:
            vectors = pickle.load(fh)["vectors"]
        print(f"node: {backend.version_string} at {args.url}; machine: {os.cpu_count()} CPUs")
        print(
            f"corpus: {args.corpus.name} x{args.copies} = {total} docs; vectors: {info['model']} "
            f"(first 64-token window, top 256), {info['features']:.0f} features/doc on average; "
            f"encoding them once took {info['seconds']:.1f}s ({info['docs'] / info['seconds']:.0f} docs/s)"
        )

        indexed, seconds = raw_bulk(
            backend, args.url, names["raw"], corpus, vectors, info, args.writers, args.chunk_docs
        )
        raw_rate = indexed / seconds
        print(
            f"raw bulk (opensearch-py parallel_bulk, {args.writers} threads, {args.chunk_docs} docs/request): "
            f"{indexed} docs in {seconds:.2f}s = {raw_rate:.0f} docs/s"
        )

        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            object_store_memory=512 << 20,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        PrecomputedEncodeBatch.vectors_path = str(vectors_path)
        report, steady = pipeline(
            conn,
            names["pipe"],
            corpus,
            args.writers,
            args.chunk_docs,
            args.threads,
            stage=PrecomputedEncodeBatch,
            report_dir=scratch,
        )
        count = backend.count(names["pipe"])
        steady_text = f"{steady:.0f} docs/s" if steady else "too few batches to measure"
        print(
            f"pipeline (IngestJob, precomputed-vector encode stage, 1 encode actor, {args.writers} writer actors): "
            f"{report.indexed} docs indexed (index count {count}); end to end {report.seconds:.2f}s = "
            f"{report.docs_per_s:.0f} docs/s (incl. Ray/actor start-up); steady state {steady_text}"
        )
        if steady:
            print(
                f"ratio pipeline/raw: steady state {steady / raw_rate:.2f} (goal >= 0.80), "
                f"end to end {report.docs_per_s / raw_rate:.2f}"
            )

        if args.encode_docs:
            # end to end only: with few result batches a "steady state" window would miss most of the encoding
            enc_report, _ = pipeline(
                conn,
                names["enc"],
                corpus,
                args.writers,
                args.chunk_docs,
                args.threads,
                limit=args.encode_docs,
                report_dir=scratch,
            )
            print(
                f"pipeline with the real tiny encoder (tiny-mistral, CPU, {args.threads} torch thread(s)): "
                f"{enc_report.indexed} docs in {enc_report.seconds:.1f}s = {enc_report.docs_per_s:.1f} docs/s end to "
                f"end, incl. Ray/actor start-up (the encoder alone, in-process: "
                f"{info['docs'] / info['seconds']:.0f} docs/s)"
            )
        ray.shutdown()

        analyzer = backend.request("GET", f"/{names['pipe']}/_mapping")
        analyzer = next(iter(analyzer.values()))["mappings"]["properties"]["text"].get("analyzer", "standard")
        bm25_only(backend, names["bm25"], corpus, analyzer)
        sparse_bytes, sparse_docs = store_bytes(backend, names["pipe"])
        bm25_bytes, bm25_docs = store_bytes(backend, names["bm25"])
        print(
            f"index size on disk (force-merged, primaries): sparse+BM25 index {sparse_bytes / sparse_docs:.0f} "
            f"bytes/doc ({sparse_bytes / 2**20:.1f} MiB, {sparse_docs} docs); BM25-only index "
            f"{bm25_bytes / bm25_docs:.0f} bytes/doc ({bm25_bytes / 2**20:.1f} MiB, {bm25_docs} docs); "
            f"ratio {sparse_bytes / bm25_bytes:.1f}x"
        )
    finally:
        if not args.keep:
            for name in names.values():
                backend.request("DELETE", f"/{name}*", params={"ignore_unavailable": True})
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
