"""Faults on a REAL 3-node OpenSearch cluster (`echo-splade cluster start --nodes 3`): nodes killed mid-ingest,
failover between --urls, searches while a node is down, the flood-stage block, throttling, an unreachable
cluster, an encoder actor killed mid-run.

Marked ``multinode`` (deselected by default). Run::

    ECHO_SPLADE_MULTINODE_PORT=9210 ECHO_SPLADE_MULTINODE_TRANSPORT_PORT=9310 \\
        .venv/bin/python -m pytest -q -m multinode tests/test_multinode_faults.py

The cluster is started when it is not running (left running when it was) and stopped at the end when this
module started it. Every test leaves all three nodes up and the cluster green.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from _shared_data import shared_dataset

from echo_splade.client import ClusterError, ConnectionConfig, connect
from echo_splade.ingest import IngestJob
from echo_splade.mappings import BULK_LOAD_META_KEY

pytestmark = pytest.mark.multinode

PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_PORT", "9210"))
TRANSPORT_PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_TRANSPORT_PORT", str(PORT + 100)))
CRANFIELD = shared_dataset("cranfield")
# the fast tiny encoder of the ingest tests: first 64-token window, one torch thread
FAST = dict(
    model="tiny-mistral",
    max_length=64,
    encoder_options={"truncate": True},
    torch_threads=1,
    batch_size=16,
    block_rows=50,
    shards=3,
    replicas=1,
)


@pytest.fixture(scope="module")
def three_nodes():
    """The 3-node cluster (started here unless it runs); after each test every member is up again."""
    from echo_splade.integration import LocalCluster

    cluster = LocalCluster(nodes=3, port=PORT, transport_port=TRANSPORT_PORT, heap="384m")
    started = cluster.start(timeout=300)
    yield cluster
    if any(started):
        cluster.stop()


@pytest.fixture
def cluster(three_nodes):
    """The cluster for one test; afterwards any member that is down is restarted and the cluster is green."""
    yield three_nodes
    three_nodes.request("PUT", "/_cluster/settings", {"persistent": _DISK_DEFAULTS, "transient": _DISK_DEFAULTS})
    three_nodes.start(timeout=300)


_DISK_DEFAULTS = {
    "cluster.routing.allocation.disk.threshold_enabled": None,
    "cluster.routing.allocation.disk.watermark.low": None,
    "cluster.routing.allocation.disk.watermark.high": None,
    "cluster.routing.allocation.disk.watermark.flood_stage": None,
    "cluster.info.update.interval": None,
}


@pytest.fixture(scope="module")
def ray_session():
    """One lean local Ray for this module (IngestJob reuses an initialised Ray)."""
    import logging

    import ray

    started = not ray.is_initialized()
    for attempt in range(2 if started else 0):
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                object_store_memory=256 << 20,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
            break
        except Exception as exc:  # Ray waits 30 s for its raylet: too short on a busy 2-core machine
            if "timed out during startup" not in str(exc) or attempt:
                raise
            ray.shutdown()
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def index(cluster, request):
    name = f"mn-{request.node.name.lower()[:30].strip('_-')}-{os.getpid()}".replace("_", "-")
    yield name
    cluster.request("DELETE", f"/{name}*?expand_wildcards=all", missing_ok=True)


def _corpus(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    """The first ``n`` Cranfield records and the ids of the valid ones (471 and 995 are empty)."""
    path = tmp_path / "corpus.jsonl"
    ids = []
    with open(CRANFIELD / "corpus.jsonl") as src, open(path, "w") as dst:
        for _ in range(n):
            line = src.readline()
            dst.write(line)
            record = json.loads(line)
            if (record.get("title") or "").strip() or (record.get("text") or "").strip():
                ids.append(str(record["_id"]))
    return path, ids


def _job(corpus, index, urls, tmp_path, **kwargs) -> IngestJob:
    """The ingest job, creating the index with 3 primaries and 1 replica (held at 0 during the load)."""
    config = ConnectionConfig(urls=tuple(urls), timeout=30)
    return IngestJob(corpus, index, config, report_path=tmp_path / "report.json", **{**FAST, **kwargs})


def _assert_exactly(cluster, index: str, ids: list[str]) -> None:
    """The index holds exactly ``ids`` (count and ids, so no duplicates), and its bulk-load settings are back."""
    backend = connect(ConnectionConfig(urls=cluster.urls, timeout=60))
    try:
        backend.refresh(index)
        found = backend.search(index, {"query": {"match_all": {}}, "size": 10_000, "_source": False})
        assert found["_shards"]["failed"] == 0
        got = [h["_id"] for h in found["hits"]["hits"]]
        assert len(got) == len(set(got)) == backend.count(index) == len(ids)
        assert set(got) == set(ids)
        (physical,) = backend.get_settings(index)
        settings = backend.get_settings(index)[physical]["settings"]
        assert settings.get("index.refresh_interval") in (None, "1s")
        assert settings.get("index.number_of_replicas") == "1"
        meta = backend.get_mapping(index)[physical]["mappings"].get("_meta", {})
        assert BULK_LOAD_META_KEY not in meta
    finally:
        backend.close()


def _kill(member) -> None:
    pid = member.pid
    assert pid is not None, f"{member} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while member.pid is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def _run_with_fault(job: IngestJob, fault, after: int = 1):
    """Run ``job``; call ``fault()`` once, at the first progress report with ``after`` or more documents
    indexed. Returns ``(report, error)``: the error the run raised, or None."""
    fired = []

    def progress(report):
        if not fired and report.indexed >= after:
            fired.append(time.monotonic())
            fault()

    try:
        return job.run(progress=progress), None
    except Exception as exc:
        return job.report, exc
    finally:
        assert fired, "the fault never fired: the job ended before indexing anything"


def _restart_later(cluster, delay: float = 5.0) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), cluster.start(timeout=300, wait_for_status="yellow")))
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------------ the cluster
def test_three_nodes_form_one_cluster_and_a_rerun_restarts_a_killed_member(cluster):
    status = cluster.status()
    assert status["running"] and status["health"] == "green" and status["number_of_nodes"] == 3
    assert sorted(n["name"] for n in status["nodes"]) == [m.node_dir.name for m in cluster.members]
    assert len({m.port for m in cluster.members} | set(cluster.transport_ports)) == 6
    _kill(cluster.members[2])
    assert cluster.status()["running"] is False
    assert cluster.start(timeout=300) == [False, False, True]
    assert cluster.status()["number_of_nodes"] == 3


# --------------------------------------------------------------------------------------------- ingest faults
def test_a_data_node_killed_mid_ingest_and_restarted_loses_and_duplicates_nothing(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 300)
    job = _job(corpus, index, cluster.urls[:1], tmp_path, writer_options={"max_chunk_docs": 25, "max_retries": 12})
    restart: list[threading.Thread] = []
    report, error = _run_with_fault(
        job, lambda: (_kill(cluster.members[1]), restart.append(_restart_later(cluster))), after=25
    )
    restart[0].join(timeout=300)
    if error is not None:  # allowed: a non-zero exit that names how much was indexed
        assert f"after indexing {report.indexed} document(s)" in str(error) and "--resume" in str(error)
        resumed = _job(corpus, index, cluster.urls[:1], tmp_path, resume=True).run()
        assert resumed.status == "completed"
    else:
        assert report.status == "completed" and report.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


def test_the_node_the_client_talks_to_dies_and_the_job_fails_over_to_the_other_urls(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 300)
    job = _job(corpus, index, cluster.urls, tmp_path, writer_options={"max_chunk_docs": 25, "max_retries": 12})
    restart: list[threading.Thread] = []
    report, error = _run_with_fault(
        job, lambda: (_kill(cluster.members[0]), restart.append(_restart_later(cluster))), after=25
    )
    restart[0].join(timeout=300)
    assert error is None, f"no failover: {error}"
    assert report.status == "completed" and report.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


# --------------------------------------------------------------------------------------------- search faults
def test_a_search_while_a_node_is_down_answers_from_the_other_copies_or_says_shards_are_missing(cluster, index):
    from echo_splade.connector import SparseRetriever
    from echo_splade.mappings import IndexSpec, provision, token_to_feature

    backend = connect(ConnectionConfig(urls=cluster.urls, timeout=30))
    words = ["wing", "lift", "drag", "flow", "shock", "heat", "plate"]
    for name, replicas in ((f"{index}-r1", 1), (f"{index}-r0", 0)):
        provision(backend, IndexSpec(name=name, shards=3, replicas=replicas, sparse_type="rank_features"))
        lines = []
        for i in range(90):
            sparse = {token_to_feature(words[i % 7]): 1.0 + i / 10, token_to_feature(words[(i * 3) % 7]): 0.5}
            lines += [json.dumps({"index": {"_index": name, "_id": str(i)}}), json.dumps({"sparse": sparse})]
        assert not backend.bulk(lines, refresh="true")["errors"]
    cluster.wait_for("green", nodes=3)
    query = {"lift": 1.0, "shock": 0.5}
    r1 = SparseRetriever(backend, f"{index}-r1", mode="tokens")
    r0 = SparseRetriever(backend, f"{index}-r0", mode="tokens")
    before = [(h.id, h.score) for h in r1.search(query, k=50)]
    assert before == [(h.id, h.score) for h in r0.search(query, k=50)] and len(before) == 50

    _kill(cluster.members[2])
    cluster.request("GET", "/_cluster/health?wait_for_nodes=2&timeout=60s")
    cluster.request("GET", f"/_cluster/health/{index}-r1?wait_for_status=yellow&timeout=60s")
    # every shard of the replicated index still has a copy: the same hits, through the surviving URLs
    assert [(h.id, h.score) for h in r1.search(query, k=50)] == before
    # the unreplicated index lost a shard: a clear error, never the other shards' hits as if complete
    with pytest.raises(ClusterError, match=r"only 2 of 3 shards answered.*hits would be partial") as caught:
        r0.search(query, k=50)
    assert caught.value.error_type == "partial_search_results"
    backend.close()


# ---------------------------------------------------------------------------------- the flood-stage watermark
def _flood(cluster, on: bool) -> None:
    """Every node past the flood-stage watermark (limits far above the free space), or the defaults back."""
    values = {
        "cluster.routing.allocation.disk.threshold_enabled": True,
        "cluster.routing.allocation.disk.watermark.low": "300tb",
        "cluster.routing.allocation.disk.watermark.high": "200tb",
        "cluster.routing.allocation.disk.watermark.flood_stage": "100tb",
        "cluster.info.update.interval": "1s",
    }
    cluster.request("PUT", "/_cluster/settings", {"transient": values if on else _DISK_DEFAULTS})


def _blocked(cluster, index: str) -> bool:
    settings = cluster.request("GET", f"/{index}/_settings?flat_settings=true")
    return any(s["settings"].get("index.blocks.read_only_allow_delete") == "true" for s in settings.values())


def test_the_flood_stage_block_stops_ingest_with_a_clear_error_and_resume_completes(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 300)
    options = {"max_chunk_docs": 25, "max_retries": 3, "initial_backoff": 0.2, "max_backoff": 1.0}
    job = _job(corpus, index, cluster.urls, tmp_path, writer_options=options)

    def fill_the_disk():
        _flood(cluster, True)
        deadline = time.monotonic() + 60
        while not _blocked(cluster, index) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _blocked(cluster, index), "the flood-stage watermark never blocked the index"

    report, error = _run_with_fault(job, fill_the_disk, after=25)
    assert error is not None, "the ingest ignored the read-only-allow-delete block"
    assert "read_only_allow_delete" in str(error) and f"after indexing {report.indexed} document(s)" in str(error)
    assert report.status == "failed" and 0 < report.indexed < len(ids)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "failed" and saved["indexed"] == report.indexed
    assert not job.dead_letter_path.exists(), "blocked documents were dead-lettered instead of stopping the job"

    _flood(cluster, False)  # disk space back; lift the block as the error says
    cluster.request("PUT", f"/{index}/_settings", {"index.blocks.read_only_allow_delete": None})
    resumed = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert resumed.status == "completed" and resumed.skipped >= report.indexed
    assert resumed.skipped + resumed.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


# --------------------------------------------------------------------------------------- an unreachable cluster
def test_the_whole_cluster_gone_mid_job_stops_it_naming_what_was_indexed_and_resume_finishes(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 300)
    options = {"max_chunk_docs": 25, "max_retries": 2, "initial_backoff": 0.5, "max_backoff": 1.0}
    job = _job(corpus, index, cluster.urls, tmp_path, writer_options=options)
    report, error = _run_with_fault(job, lambda: [_kill(m) for m in cluster.members], after=25)
    assert isinstance(error, ClusterError) and error.unreachable, error
    assert f"after indexing {report.indexed} document(s)" in str(error) and "--resume" in str(error)
    assert json.loads((tmp_path / "report.json").read_text())["indexed"] == report.indexed > 0

    cluster.start(timeout=300)
    backend = connect(ConnectionConfig(urls=cluster.urls))
    backend.refresh(index)
    assert backend.count(index) >= report.indexed  # what the report calls indexed survived the restart
    backend.close()
    resumed = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert resumed.status == "completed" and resumed.skipped + resumed.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


# -------------------------------------------------------------------------------------- a killed encoder actor
def _encoder_actor_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::") and b"EncodeBatch" in cmdline:
                pids.append(int(proc.name))
    return pids


def test_an_encoder_actor_killed_mid_run_loses_nothing(cluster, index, ray_session, tmp_path):
    corpus, ids = _corpus(tmp_path, 300)
    killed: list[int] = []

    def kill_encoder():
        pids = _encoder_actor_pids()
        assert pids, "no encoder actor process found"
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    job = _job(corpus, index, cluster.urls, tmp_path, writer_options={"max_chunk_docs": 25})
    report, error = _run_with_fault(job, kill_encoder, after=25)
    assert killed
    if error is not None or report.status != "completed":
        assert "--resume" in str(error)
        report = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert report.status == "completed" and report.dead_lettered == 0
    _assert_exactly(cluster, index, ids)
