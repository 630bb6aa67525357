"""Ingest streaming: how soon encoded documents reach the cluster, before vs after (issue 17).

Both variants run the real ``IngestJob`` (Ray Data: reader -> encoder actor -> writer actors -> driver) on the
same corpus, alternated, ``--repeats`` times each, in one Ray instance:

- ``before``: the block plan the job had until issue 17: Ray Data blocks of 256 KiB, the writer stage called
  with ``max_chunk_docs`` (500) rows (``_block_plan`` overridden);
- ``after``: the job as it is (16 KiB blocks: each encoder call's output leaves as soon as it returns; the
  writer called with ``batch_size`` rows).

Encoding is paced to a realistic CPU speed without using the CPU: ``tiny-mistral`` (first 64-token window)
computes real vectors, then the encode stage sleeps ``--seconds-per-doc`` per document (the built-in
``echo-splade-smollm2-135m`` encodes ~0.3-0.6 s per MEDLINE-sized document on this 2-core CPU). The encode stage
logs when each batch is encoded; the driver logs when each written batch comes back. Printed per run:

- first write: seconds from the job's start, and from the first encoded batch, to the first acknowledged write;
- largest gap: the longest time without a write, from the first encoded batch to the last write;
- max lag: the largest delay between the k-th document being encoded and the k-th being written.

    python benchmarks/ingest_streaming.py --url http://127.0.0.1:9200 [--docs 300] [--seconds-per-doc 0.2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from echo_splade.client import ConnectionConfig, connect
from echo_splade.ingest import CorpusReader, EncodeBatch, IngestJob

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


class PacedEncodeBatch(EncodeBatch):
    """The real encode stage, then a sleep per document (a CPU-speed encoder without the CPU load); it appends
    ``<unix time> <documents>`` to ``log_path`` after each encoder call."""

    log_path = ""
    seconds_per_doc = 0.0

    def _encode(self, rows):
        out = super()._encode(rows)
        time.sleep(self.seconds_per_doc * len(rows))
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time()} {len(rows)}\n")
        return out


class HoardingIngestJob(IngestJob):
    """The job with its block plan before issue 17: whole read blocks per encoder task, 500-row writer calls."""

    def _block_plan(self) -> tuple[int, int]:
        return int(self.writer_options.get("max_chunk_docs", 500)), 256 * 1024


def write_corpus(source: Path, docs: int, target: Path) -> int:
    n = 0
    with open(target, "w", encoding="utf-8") as fh:
        for record in CorpusReader(source):
            if record["reason"]:
                continue
            fh.write(json.dumps({"_id": record["doc_id"], "title": record["title"], "text": record["text"]}) + "\n")
            n += 1
            if n >= docs:
                break
    return n


def timeline(encoded: list[tuple[float, int]], written: list[tuple[float, int]]) -> dict:
    """First-write delay, largest gap and max k-th-document lag from two cumulative timelines."""
    first_encode = encoded[0][0]
    writes = [t for t, _ in written]
    gaps = [b - a for a, b in zip([first_encode, *writes], writes)]
    lag, before = 0.0, 0
    for t_write, n_written in written:
        # the oldest document of this write is the (before + 1)-th encoded one: encoded when the count reached it
        first = next((t for t, n in encoded if n > before), encoded[-1][0])
        lag = max(lag, t_write - first)
        before = n_written
    return {"after_first_encode": writes[0] - first_encode, "largest_gap": max(gaps), "max_lag": lag}


def run(job_class, corpus: Path, index: str, conn, scratch: Path, args) -> dict:
    log = scratch / f"{index}.encoded.log"
    PacedEncodeBatch.log_path, PacedEncodeBatch.seconds_per_doc = str(log), args.seconds_per_doc
    written: list[tuple[float, int]] = []

    def progress(report):
        if not written or report.indexed > written[-1][1]:
            written.append((time.time(), report.indexed))

    job = job_class(
        corpus,
        index,
        conn,
        model="tiny-mistral",
        max_length=64,
        encoder_options={"truncate": True},
        torch_threads=1,
        batch_size=args.batch_size,
        block_rows=args.block_rows,
        writers=2,
        writer_options={"max_chunk_docs": args.chunk_docs},
        encode_stage=PacedEncodeBatch,
        report_path=scratch / f"{index}.json",
    )
    started = time.time()
    report = job.run(progress=progress)
    encoded, total = [], 0
    for line in log.read_text().split("\n"):
        if line:
            t, n = line.split()
            total += int(n)
            encoded.append((float(t), total))
    result = timeline(encoded, written)
    result.update(
        from_start=written[0][0] - started,
        seconds=report.seconds,
        indexed=report.indexed,
        writes=len(written),
        last_encode_to_end=written[-1][0] - encoded[-1][0],
    )
    return result


def start_ray(tries: int = 20) -> None:
    """A local Ray of this benchmark's own; retried: under load the raylet can miss Ray's 30 s registration limit."""
    import ray

    for attempt in range(1, tries + 1):
        try:
            ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                object_store_memory=512 << 20,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
            return
        except Exception as exc:  # Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt == tries:
                raise
            print(f"Ray start attempt {attempt} failed ({exc}); retrying")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("ECHO_SPLADE_URL", "http://127.0.0.1:9200"))
    parser.add_argument("--corpus", type=Path, default=SCIFACT, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--seconds-per-doc", type=float, default=0.2, help="paced encoding speed")
    parser.add_argument("--batch-size", type=int, default=32, help="documents per encoder call (the CLI default)")
    parser.add_argument("--block-rows", type=int, default=1000, help="IngestJob block_rows (its default)")
    parser.add_argument("--chunk-docs", type=int, default=500, help="writer max_chunk_docs (the CLI default)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import ray

    conn = ConnectionConfig(urls=(args.url,), timeout=120)
    backend = connect(conn)
    tag = uuid.uuid4().hex[:6]
    scratch = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    corpus = scratch / "corpus.jsonl"
    docs = write_corpus(args.corpus, args.docs, corpus)
    print(
        f"{docs} {args.corpus.name} documents, tiny-mistral vectors paced to {args.seconds_per_doc} s/doc "
        f"(~{docs * args.seconds_per_doc:.0f} s of encoding), batch_size {args.batch_size}, block_rows "
        f"{args.block_rows}, max_chunk_docs {args.chunk_docs}; node {backend.version_string}; {os.cpu_count()} CPUs"
    )
    start_ray()
    variants = {"before": HoardingIngestJob, "after": IngestJob}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    try:
        for r in range(args.repeats):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                index = f"bench-stream-{name}-{r}-{tag}"
                try:
                    out = run(variants[name], corpus, index, conn, scratch, args)
                finally:
                    backend.request("DELETE", f"/{index}*", params={"ignore_unavailable": True})
                results[name].append(out)
                print(
                    f"  {name:6} run {r + 1}: first write {out['from_start']:.1f} s after the start, "
                    f"{out['after_first_encode']:.1f} s after the first encoded batch; largest gap between writes "
                    f"{out['largest_gap']:.1f} s; max encoded->written lag {out['max_lag']:.1f} s; {out['writes']} "
                    f"write acknowledgements; {out['indexed']} docs in {out['seconds']:.1f} s"
                )
    finally:
        ray.shutdown()
        backend.close()
    print("medians over the runs   | first write from start | after first encode | largest gap | max lag | total s")
    for name, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        print(
            f"{name:23} | {med['from_start']:22.1f} | {med['after_first_encode']:18.1f} | "
            f"{med['largest_gap']:11.1f} | {med['max_lag']:7.1f} | {med['seconds']:7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
