"""Latency that `echo-splade proxy` adds, on loopback, at p50/p99: pass-through and inference-free rewriting.

Starts `echo-splade proxy` as a subprocess (its own process: the load generator does not share its GIL) in
front of the node, with the alias INDEX rewritten in inference-free mode, then sends the same app request
(a ``multi_match`` over title and text, size 10) sequentially from one keep-alive client, interleaving four
kinds per round (order rotated every round):

- ``direct bm25``: the body to the node itself;
- ``proxy pass-through``: the body through the proxy to the index's physical name (not rewritten);
- ``direct sparse``: the body the proxy would send (the connector's rewrite, computed beforehand) to the node;
- ``proxy rewrite``: the body through the proxy to INDEX (rewritten there, inference-free).

Added latency: pass-through minus direct bm25 (target <= 2 ms at p50), and rewrite minus direct bm25 (the
issue's definition; target <= 10 ms at p50); rewrite minus direct sparse isolates the proxy's own work (the
sparse query costs the cluster something else than BM25). Bounded: ROUNDS rounds (default 400) after a warm-up
of every query through every path, one request at a time, and a --max-seconds cap.

    python benchmarks/proxy.py --url http://127.0.0.1:9200 --index sample [--rounds 400] [--report runs/proxy.json]

INDEX must be an echo-splade alias with a model in its _meta, e.g.
``echo-splade ingest --corpus integration/sample_corpus.jsonl --index sample --model echo-splade-bert-tiny``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

QUERIES = [
    "why does my pulse race when I am frightened",
    "cooking noodles takes longer on a high peak",
    "stop criminals from getting into my online accounts",
    "how much sleep do adults need",
    "drinking enough water in hot weather",
    "how do antibiotics stop working",
    "storing spices so they keep their flavour",
    "night trains across europe",
]
KINDS = ("direct bm25", "proxy pass-through", "direct sparse", "proxy rewrite")


def app_body(text: str) -> dict:
    return {"size": 10, "_source": ["title"], "query": {"multi_match": {"query": text, "fields": ["title", "text"]}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_proxy(upstream: str, options: list[str], timeout: float = 300.0) -> tuple[subprocess.Popen, str]:
    """``echo-splade proxy --upstream UPSTREAM OPTIONS`` as a subprocess on a free port, once it answers:
    ``(process, url)``. Raises ``RuntimeError`` with the end of its stderr when it does not start."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "echo_splade", "proxy", "--upstream", upstream, "--port", str(port), *options],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/", timeout=5)
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
                raise RuntimeError(f"the proxy did not start: {err}") from None
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9200", help="the node")
    parser.add_argument("--index", default="sample", help="an echo-splade alias (model in its _meta)")
    parser.add_argument("--rounds", type=int, default=400, help="measured rounds (4 requests each)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop measuring after this long")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.rounds < 10:
        parser.error("--rounds must be >= 10")

    from echo_splade.client import ConnectionConfig, connect
    from echo_splade.connector import SparseRetriever

    backend = connect(ConnectionConfig(urls=(args.url,)))
    physical = sorted(backend.get_aliases(args.index)) or [args.index]
    if physical == [args.index]:
        print(f"error: {args.index} must be an alias (pass-through goes to its physical index)", file=sys.stderr)
        return 2
    retriever = SparseRetriever(backend, args.index, mode="inference-free")
    sparse_bodies = {q: retriever.rewrite(app_body(q), field="text") for q in QUERIES}

    try:
        proc, proxy_url = start_proxy(args.url, ["--alias", args.index, "--mode", "inference-free"])
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        headers = {"content-type": "application/json"}

        def request(client: httpx.Client, kind: str, q: str) -> float:
            if kind == "direct bm25":
                url, body = f"{args.url}/{args.index}/_search", app_body(q)
            elif kind == "proxy pass-through":
                url, body = f"{proxy_url}/{physical[0]}/_search", app_body(q)
            elif kind == "direct sparse":
                url, body = f"{args.url}/{args.index}/_search", sparse_bodies[q]
            else:
                url, body = f"{proxy_url}/{args.index}/_search", app_body(q)
            payload = json.dumps(body).encode()
            t0 = time.perf_counter()
            r = client.post(url, content=payload, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000.0
            if r.status_code != 200:
                raise RuntimeError(f"{kind}: HTTP {r.status_code}: {r.text[:300]}")
            if kind == "proxy rewrite" and r.headers.get("x-echo-splade-rewrite") != "rewritten":
                raise RuntimeError(f"the proxy did not rewrite: {r.headers.get('x-echo-splade-rewrite')}")
            return elapsed

        times: dict[str, list[float]] = {k: [] for k in KINDS}
        with httpx.Client(timeout=60) as client:
            for q in QUERIES:  # warm-up: connections, caches, document frequencies of every query token
                for kind in KINDS:
                    for _ in range(3):
                        request(client, kind, q)
            started = time.monotonic()
            rounds = 0
            for rounds in range(1, args.rounds + 1):
                q = QUERIES[rounds % len(QUERIES)]
                order = KINDS[rounds % 4 :] + KINDS[: rounds % 4]
                for kind in order:
                    times[kind].append(request(client, kind, q))
                if time.monotonic() - started > args.max_seconds:
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    def pct(kind: str, p: float) -> float:
        return float(np.percentile(times[kind], p))

    print(f"{rounds} rounds x 4 requests, one at a time, loopback; node {args.url}, alias {args.index}")
    print(f"{'path':<20} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for kind in KINDS:
        print(f"{kind:<20} {pct(kind, 50):8.2f} {pct(kind, 99):8.2f} {np.mean(times[kind]):8.2f}")
    added = {
        "pass-through vs direct bm25": ("proxy pass-through", "direct bm25", 2.0),
        "rewrite vs direct bm25": ("proxy rewrite", "direct bm25", 10.0),
        "rewrite vs direct sparse": ("proxy rewrite", "direct sparse", 10.0),
    }
    report: dict = {"rounds": rounds, "paths": {}, "added": {}}
    for kind in KINDS:
        report["paths"][kind] = {"p50": pct(kind, 50), "p99": pct(kind, 99), "mean": float(np.mean(times[kind]))}
    print("added latency (difference of percentiles):")
    for name, (a, b, target) in added.items():
        p50, p99 = pct(a, 50) - pct(b, 50), pct(a, 99) - pct(b, 99)
        verdict = "met" if p50 <= target else "MISSED"
        print(f"  {name:<30} p50 {p50:+7.2f} ms  p99 {p99:+7.2f} ms   target p50 <= {target:g} ms: {verdict}")
        report["added"][name] = {"p50": p50, "p99": p99, "target_p50": target, "met": p50 <= target}
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2))
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
