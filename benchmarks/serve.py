"""Load test of `echo-splade serve` on loopback: query-encoding throughput and latency, batching on vs off.

For each batching setting the script starts the service in-process (Ray Serve, one replica, the built-in
model by default), warms it up, then for each concurrency level sends a fixed number of single-query
``POST /encode`` requests (``kind: query``, ``top_k: 64``: what ``neural_sparse`` / ``SparseRetriever`` ask
for) from an asyncio httpx client with at most ``concurrency`` in flight, and stops by itself. It reports
requests/s, p50/p99 client-side latency, errors and the replica's resident memory before/after each level,
and the dynamic batch sizes the service formed (from its /metrics). Batching off = ``--max-batch-size 1``.

    python benchmarks/serve.py                              # built-in model, c = 1, 8, 32, on and off
    python benchmarks/serve.py --model echo-splade-bert-tiny --requests 64 --json runs/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _queries(path: Path, n: int) -> list[str]:
    from echo_splade.encoder import read_beir_queries

    texts = list(read_beir_queries(path).values())
    if not texts:
        raise SystemExit(f"no queries in {path}")
    return [texts[i % len(texts)] for i in range(n)]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _batch_stats(metrics: str) -> tuple[float, float]:
    count = total = 0.0
    for line in metrics.splitlines():
        if line.startswith("echo_splade_batch_size_count"):
            count = float(line.split()[-1])
        elif line.startswith("echo_splade_batch_size_sum"):
            total = float(line.split()[-1])
    return count, total


async def _level(url: str, texts: list[str], concurrency: int) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(text: str) -> None:
            async with semaphore:
                started = time.perf_counter()
                try:
                    r = await client.post("/encode", json={"texts": [text], "kind": "query", "top_k": 64})
                    ok = r.status_code == 200 and len(r.json()["response"]) == 1
                    key = "" if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if key:
                    errors[key] = errors.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in texts))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(texts),
        "seconds": round(seconds, 2),
        "rps": round(len(texts) / seconds, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "errors": errors,
    }


def run_setting(args, batch_size: int, queries: list[str]) -> list[dict]:
    from echo_splade.integration.service import EncoderService, ServiceConfig

    config = ServiceConfig(
        model=args.model, port=_free_port(), max_batch_size=batch_size, batch_wait_ms=args.batch_wait_ms, max_texts=8
    )
    service = EncoderService(config)
    started = time.perf_counter()
    service.start(timeout=600)
    print(f"# batch size {batch_size}: service ready in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    rows = []
    try:
        pid = httpx.get(service.url + "/info").json()["pid"]
        asyncio.run(_level(service.url, queries[: args.warmup], 4))  # warm-up, not reported
        for concurrency in args.concurrency:
            count0, sum0 = _batch_stats(httpx.get(service.url + "/metrics").text)
            rss0 = _rss_mb(pid)
            row = asyncio.run(_level(service.url, queries[: args.requests], concurrency))
            count1, sum1 = _batch_stats(httpx.get(service.url + "/metrics").text)
            row.update(
                max_batch_size=batch_size,
                mean_batch=round((sum1 - sum0) / max(count1 - count0, 1), 2),
                rss_mb_before=round(rss0),
                rss_mb_after=round(_rss_mb(pid)),
            )
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    finally:
        service.stop()
    return rows


def main() -> None:
    from echo_splade.encoder import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--queries", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/scifact/queries.jsonl"
    )
    parser.add_argument("--requests", type=int, default=256, help="requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32, help="the batching-on setting")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    queries = _queries(args.queries.resolve(), max(args.requests, args.warmup))
    rows = run_setting(args, args.max_batch_size, queries) + run_setting(args, 1, queries)
    print(
        "| batching | concurrency | requests | req/s | p50 ms | p99 ms | errors | mean batch | replica RSS MB before -> after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = f"on (max {r['max_batch_size']})" if r["max_batch_size"] > 1 else "off (1)"
        errors = sum(r["errors"].values())
        print(
            f"| {label} | {r['concurrency']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{errors} | {r['mean_batch']} | {r['rss_mb_before']} -> {r['rss_mb_after']} |"
        )
    on = {r["concurrency"]: r for r in rows if r["max_batch_size"] > 1}
    off = {r["concurrency"]: r for r in rows if r["max_batch_size"] == 1}
    top = max(args.concurrency)
    if top in on and top in off:
        ratio = on[top]["rps"] / off[top]["rps"]
        print(
            f"\nc={top}: batching gives {ratio:.2f}x the throughput of batch size 1 (target >= 3x: "
            f"{'met' if ratio >= 3 else 'missed'}); p99 {on[top]['p99_ms']} ms (target < 1000 ms: "
            f"{'met' if on[top]['p99_ms'] < 1000 else 'missed'})"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
