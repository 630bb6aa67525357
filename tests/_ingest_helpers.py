"""Shared by the tests that run the Ray ingest job (test_ingest_job.py, test_compat.py, test_multinode_faults.py,
and conftest.py's ``ray_session``): the fast tiny-encoder options, the one local Ray of a test run, and the head
of a corpus file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: A fast tiny encoder: tiny-mistral, the first 64-token window only, one torch thread (much faster than several
#: threads on a shared 2-core machine), 32 documents per encoder call, 200 records per read block, and ONE bulk
#: writer actor (each actor is a process of its own that imports the clients: seconds per job; the product's
#: default of two is what a test passes when concurrent writers are what it checks). A module adds or overrides
#: options with ``{**FAST, ...}`` (e.g. ``block_rows``, ``shards``, ``writers``).
FAST: dict[str, Any] = dict(
    model="tiny-mistral",
    max_length=64,
    encoder_options={"truncate": True},
    torch_threads=1,
    batch_size=32,
    block_rows=200,
    writers=1,
)


def start_test_ray():
    """One lean local Ray (2 CPUs, a 256 MiB object store) through the product's own start (``RayRuntime``: a new
    loopback cluster, retried when a busy machine misses Ray's 30 s node registration). ``IngestJob`` joins a Ray
    that is already initialised instead of starting its own, so every job of the test run shares this one.
    Returns the runtime; ``shutdown()`` stops it."""
    from echo_splade.ingest import RayRuntime

    runtime = RayRuntime()
    # 6 attempts: at load ~15 the multinode tests saw two timed-out starts in a row (helper faults3)
    runtime.start(num_cpus=2, object_store_memory=256 << 20, attempts=6)
    return runtime


def corpus_head(source: Path, destination: Path, n: int) -> Path:
    """The first ``n`` lines of the JSON-lines corpus ``source``, written to ``destination``; returns it."""
    with open(source, "rb") as src, open(destination, "wb") as dst:
        for _ in range(n):
            dst.write(src.readline())
    return destination


def wait_for_free_cpus(within: float = 30.0) -> tuple[float, float]:
    """``(free, total)`` CPUs of the initialised Ray once every CPU is free again, or when ``within`` seconds have
    passed: a finished or failed job's actors give their CPUs back asynchronously."""
    import time

    import ray

    deadline = time.monotonic() + within
    while True:
        free, total = ray.available_resources().get("CPU", 0.0), ray.cluster_resources().get("CPU", 0.0)
        if free >= total or time.monotonic() >= deadline:
            return free, total
        time.sleep(0.5)
