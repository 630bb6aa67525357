"""Several --url's: a node that refuses connections is skipped for the next URL; an unreachable cluster at the
start of an ingest is one clear error line and a report (on the OpenSearch test node; no Ray is started)."""

from __future__ import annotations

import json
import socket

import pytest

from echo_splade.client import ClusterError, ConnectionConfig, connect


def _dead_url() -> str:
    """A loopback URL on which nothing listens (a port that was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_dead_url_among_several_is_skipped_on_every_request(connection):
    backend = connect(ConnectionConfig(urls=(_dead_url(), *connection.urls), timeout=10))
    try:
        # the client picks the URLs in turn: without failover every other request would fail
        for _ in range(8):
            assert backend.health()["status"] in ("green", "yellow")
    finally:
        backend.close()


def test_only_dead_urls_name_every_one(connection):
    dead = (_dead_url(), _dead_url())
    with pytest.raises(ClusterError, match="cannot reach the cluster at") as caught:
        connect(ConnectionConfig(urls=dead, timeout=10))
    assert caught.value.unreachable and all(url in str(caught.value) for url in dead)


def test_an_unreachable_cluster_at_ingest_start_is_one_clear_line_and_a_report(tmp_path):
    from click.testing import CliRunner

    from echo_splade.cli import cli

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": f"wing lift {i}"}) + "\n" for i in range(5)))
    dead, report = _dead_url(), tmp_path / "report.json"
    args = ["ingest", "--corpus", str(corpus), "--index", "x", "--url", dead, "--report", str(report)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"cannot reach the cluster at {dead}" in errors[0], result.output
    saved = json.loads(report.read_text())
    assert (saved["status"], saved["indexed"]) == ("failed", 0) and "cannot reach the cluster" in saved["error"]
