"""CPU ingest speed of the built-in model: ``echo-splade ingest`` as users run it, variants side by side (issue 17).

Each run is the real CLI (a new process: Ray start, model load, and for ``--compile`` the compilation in the
encoder actor) writing the first ``--limit`` documents of a corpus into a fresh scratch index. Variants are
alternated A B .. B A over ``--repeats`` passes so one slow moment of the machine does not decide. While a run
goes, the script refreshes and counts the index every ``--poll`` seconds (the job turns refresh off during the
load), which separates the start-up cost from the encoding rate:

- ``total s`` and ``docs/s``: the whole command, as the ingest report gives it;
- ``first write s``: seconds until the first documents were in the index (start-up, model load, compilation);
- ``steady docs/s``: documents written between the first and the last count / the seconds between them: the
  rate a long ingest runs at once started.

    python benchmarks/ingest_speed.py --url http://127.0.0.1:9200 [--corpus ../shared/data/scifact] [--limit 200]
        [--variants "fp32=;int8+compile=--int8 --compile"] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from echo_splade.client import Backend, ClusterError, ConnectionConfig, connect

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_VARIANTS = "fp32=;int8+compile=--int8 --compile"


def run_once(
    backend: Backend, url: str, corpus: Path, model: str, limit: int, flags: list[str], index: str, poll: float
) -> dict:
    """One ``echo-splade ingest`` into a fresh ``index``; its report plus the write timeline (``backend``: the
    cluster at ``url``, for the clean-up and the counts)."""
    backend.request("DELETE", f"/{index}*", params={"ignore_unavailable": "true"})
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "echo_splade", "ingest", "--url", url, "--corpus", str(corpus), "--model", model]
        cmd += ["--index", index, "--limit", str(limit), "--writers", "1", "--report", str(report_path), *flags]
        start = time.monotonic()
        with open(Path(tmp) / "log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            counts: list[tuple[float, int]] = []
            while proc.poll() is None:
                time.sleep(poll)
                try:
                    backend.request("POST", f"/{index}/_refresh")
                    counts.append((time.monotonic() - start, backend.count(index)))
                except ClusterError:  # not created yet
                    pass
        if proc.returncode:
            raise SystemExit(f"ingest failed ({proc.returncode}): {(Path(tmp) / 'log').read_text()[-2000:]}")
        report = json.loads(report_path.read_text())
    backend.request("DELETE", f"/{index}*", params={"ignore_unavailable": "true"})
    written = [(t, n) for t, n in counts if n > 0]
    first_t, first_n = written[0] if written else (float("nan"), 0)
    last_t, last_n = written[-1] if written else (float("nan"), 0)
    steady = (last_n - first_n) / (last_t - first_t) if last_t > first_t else float("nan")
    return {"seconds": report["seconds"], "docs": report["indexed"], "first_write": first_t, "steady": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    parser.add_argument("--model", default="echo-splade-smollm2-135m")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="'name=flags;name=flags', the first the baseline")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--poll", type=float, default=3.0)
    parser.add_argument("--index-prefix", default="bench-ingest-speed")
    args = parser.parse_args()
    variants = [
        (name.strip(), shlex.split(flags)) for name, _, flags in (v.partition("=") for v in args.variants.split(";"))
    ]
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}
    backend = connect(ConnectionConfig(urls=(args.url,)))  # one client for every run's clean-up and counts
    try:
        for rep in range(args.repeats):
            order = variants if rep % 2 == 0 else variants[::-1]
            for name, flags in order:
                index = f"{args.index_prefix}-{rep}"
                result = run_once(backend, args.url, args.corpus, args.model, args.limit, flags, index, args.poll)
                results[name].append(result)
                print(
                    f"pass {rep + 1} {name:16s} {result['docs']} docs  total {result['seconds']:.1f} s  first "
                    f"write {result['first_write']:.1f} s  steady {result['steady']:.3f} docs/s  "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        backend.close()
    base = variants[0][0]
    base_total = statistics.median(r["docs"] / r["seconds"] for r in results[base])
    base_steady = statistics.median(r["steady"] for r in results[base])
    print(f"\n{args.limit} documents of {args.corpus.name}, {args.model}; medians of {args.repeats} alternated runs")
    print(f"{'variant':16s} {'docs/s':>8s} {'x':>6s} {'first write s':>14s} {'steady docs/s':>14s} {'x':>6s}")
    for name, _ in variants:
        rs = results[name]
        total = statistics.median(r["docs"] / r["seconds"] for r in rs)
        steady = statistics.median(r["steady"] for r in rs)
        first = statistics.median(r["first_write"] for r in rs)
        ratio = steady / base_steady if base_steady > 0 else float("nan")  # one write only: no rate
        print(f"{name:16s} {total:8.3f} {total / base_total:6.2f} {first:14.1f} {steady:14.3f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
