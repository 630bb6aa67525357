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
import logging
import os
import shlex
import signal
import threading
import time
from pathlib import Path

import pytest
from _ingest_helpers import FAST as INGEST_FAST
from _shared_data import shared_dataset

from echo_splade.client import ClusterError, ConnectionConfig, connect
from echo_splade.ingest import IngestJob
from echo_splade.mappings import BULK_LOAD_META_KEY

pytestmark = pytest.mark.multinode

PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_PORT", "9210"))
TRANSPORT_PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_TRANSPORT_PORT", str(PORT + 100)))
CRANFIELD = shared_dataset("cranfield")
# the fast tiny encoder of the ingest tests, in 16-document calls and 50-record blocks (several writes per job),
# into an index of 3 primaries and 1 replica; two writers (the product default): concurrent writers are checked
FAST = {**INGEST_FAST, "batch_size": 16, "block_rows": 50, "shards": 3, "replicas": 1, "writers": 2}


_CLUSTER: list = []  # the module's cluster, for the fault watcher


@pytest.fixture(scope="module")
def three_nodes():
    """The 3-node cluster (started here unless it runs); after each test every member is up again."""
    from echo_splade.integration import LocalCluster

    cluster = LocalCluster(nodes=3, port=PORT, transport_port=TRANSPORT_PORT, heap="384m")
    started = cluster.start(timeout=300)
    _CLUSTER[:] = [cluster]
    yield cluster
    if any(started):
        cluster.stop()


@pytest.fixture
def cluster(three_nodes):
    """The cluster for one test; afterwards any member that is down is restarted and the cluster is green."""
    yield three_nodes
    three_nodes.start(timeout=300)
    three_nodes.request("PUT", "/_cluster/settings", {"persistent": _DISK_DEFAULTS, "transient": _DISK_DEFAULTS})
    blocked = three_nodes.request("GET", "/_all/_settings/index.blocks.read_only_allow_delete?flat_settings=true")
    for name in blocked:  # left by a flood-stage test that failed before lifting it
        three_nodes.request("PUT", f"/{name}/_settings", {"index.blocks.read_only_allow_delete": None})


_DISK_DEFAULTS = {
    "cluster.routing.allocation.disk.threshold_enabled": None,
    "cluster.routing.allocation.disk.watermark.low": None,
    "cluster.routing.allocation.disk.watermark.high": None,
    "cluster.routing.allocation.disk.watermark.flood_stage": None,
    "cluster.info.update.interval": None,
    # set by the cluster itself when every node passed the flood stage (OpenSearch 2.x)
    "cluster.blocks.create_index": None,
}


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


# the library's error names the parameter that finishes the job; the command line adds its flag (--resume)
_RESUME_HINT = "run it again with resume=True"


def _kill(member) -> None:
    pid = member.pid
    assert pid is not None, f"{member} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while member.pid is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def _indexed_so_far(cluster, index: str) -> int:
    """Documents the cluster has indexed into ``index`` (primaries, refreshed or not); 0 before it exists."""
    try:
        stats = cluster.request("GET", f"/{index}/_stats/indexing")
    except (OSError, ValueError):
        return 0
    return int(stats["_all"]["primaries"]["indexing"]["index_total"])


def _bulk_loading(cluster, index: str) -> bool:
    """Whether the job has provisioned ``index`` and switched it to its bulk-load settings (refresh off)."""
    try:
        settings = cluster.request("GET", f"/{index}/_settings?flat_settings=true")
    except (OSError, ValueError):
        return False
    return any(body["settings"].get("index.refresh_interval") == "-1" for body in settings.values())


def _run_with_fault(job: IngestJob, fault, after: int = 1):
    """Run ``job``; call ``fault()`` once, as soon as the cluster has indexed ``after`` documents of the job's
    index (``after=0``: as soon as the job has set its bulk-load settings, before it writes), watched from a
    thread (the job's own progress reports lag behind its writers). Returns
    ``(report, error)``: the error the run raised, or None."""
    cluster = _CLUSTER[0]
    fired: list[float] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            if _bulk_loading(cluster, job.index) if after == 0 else _indexed_so_far(cluster, job.index) >= after:
                fired.append(time.monotonic())
                fault()
                return
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        return job.run(), None
    except Exception as exc:
        return job.report, exc
    finally:
        done.set()
        watcher.join()
        assert fired, f"the fault never fired: the job ended before indexing {after} documents ({job.report})"


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
        assert f"after indexing {report.indexed} document(s)" in str(error) and _RESUME_HINT in str(error)
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
def _log_leftovers(when: str) -> None:
    """What a failed job may have left in the shared Ray (free CPUs, live actors), logged for a hang's diagnosis."""
    import ray
    import ray.util.state

    try:  # the state API needs the dashboard, which the module's Ray leaves out
        alive: object = [a.class_name for a in ray.util.state.list_actors() if a.state == "ALIVE"]
    except Exception as exc:
        alive = f"unknown ({type(exc).__name__})"
    logging.getLogger(__name__).warning(
        "%s: Ray available %s of %s; live actors: %s",
        when,
        ray.available_resources(),
        ray.cluster_resources(),
        alive,
    )


def _flood(cluster, on: bool) -> None:
    """Every node past the flood-stage watermark (limits far above the free space), or the defaults back."""
    values = {
        "cluster.routing.allocation.disk.threshold_enabled": True,
        "cluster.routing.allocation.disk.watermark.low": "300tb",
        "cluster.routing.allocation.disk.watermark.high": "200tb",
        "cluster.routing.allocation.disk.watermark.flood_stage": "100tb",
        "cluster.info.update.interval": "10s",  # the least allowed
    }
    cluster.request("PUT", "/_cluster/settings", {"transient": values if on else _DISK_DEFAULTS})


def _blocked(cluster, index: str) -> bool:
    settings = cluster.request("GET", f"/{index}/_settings?flat_settings=true")
    return any(s["settings"].get("index.blocks.read_only_allow_delete") == "true" for s in settings.values())


def test_the_flood_stage_block_stops_ingest_with_a_clear_error_and_resume_completes(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 150)
    options = {"max_chunk_docs": 25, "max_retries": 3, "initial_backoff": 0.2, "max_backoff": 1.0}
    job = _job(corpus, index, cluster.urls, tmp_path, writer_options=options)

    def fill_the_disk():  # the job keeps writing until the block arrives (10-20 s)
        _flood(cluster, True)

    report, error = _run_with_fault(job, fill_the_disk, after=0)
    assert _blocked(cluster, index), "the flood-stage watermark never blocked the index"
    assert error is not None, "the ingest ignored the read-only-allow-delete block"
    assert "read_only_allow_delete" in str(error) and f"after indexing {report.indexed} document(s)" in str(error)
    assert report.status == "failed" and report.indexed < len(ids)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "failed" and saved["indexed"] == report.indexed
    assert not job.dead_letter_path.exists(), "blocked documents were dead-lettered instead of stopping the job"

    _flood(cluster, False)  # disk space back; lift the block as the error says
    cluster.request("PUT", f"/{index}/_settings", {"index.blocks.read_only_allow_delete": None})
    _log_leftovers("flood stage, before --resume")
    resumed = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert resumed.status == "completed" and resumed.skipped >= report.indexed
    assert resumed.skipped + resumed.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


# --------------------------------------------------------------------------------------- an unreachable cluster
def test_the_whole_cluster_gone_mid_job_stops_it_naming_what_was_indexed_and_resume_finishes(
    cluster, index, ray_session, tmp_path
):
    corpus, ids = _corpus(tmp_path, 150)
    options = {"max_chunk_docs": 25, "max_retries": 2, "initial_backoff": 0.5, "max_backoff": 1.0}
    job = _job(corpus, index, cluster.urls, tmp_path, writer_options=options)
    report, error = _run_with_fault(job, lambda: [_kill(m) for m in cluster.members], after=25)
    assert isinstance(error, ClusterError) and error.unreachable, error
    assert f"after indexing {report.indexed} document(s)" in str(error) and _RESUME_HINT in str(error)
    assert json.loads((tmp_path / "report.json").read_text())["indexed"] == report.indexed

    cluster.start(timeout=300)
    backend = connect(ConnectionConfig(urls=cluster.urls))
    backend.refresh(index)
    # the report counts what the driver saw confirmed: it never claims more than the cluster holds
    # (writes confirmed to a writer whose results had not reached the driver yet are found by --resume)
    assert 25 <= backend.count(index) and report.indexed <= backend.count(index)
    backend.close()
    resumed = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert resumed.status == "completed" and resumed.skipped + resumed.indexed == len(ids)
    _assert_exactly(cluster, index, ids)


# ------------------------------------------------------------------------------------------ a 429 storm
@pytest.fixture
def throttled_cluster():
    """A second 3-node cluster whose write pools have one thread and a queue of one (static node settings, so a
    cluster of its own): HTTP ``PORT + 3 ..``, transport ``TRANSPORT_PORT + 3 ..``; stopped afterwards."""
    from echo_splade.integration import LocalCluster

    cluster = LocalCluster(
        nodes=3,
        port=PORT + 3,
        transport_port=TRANSPORT_PORT + 3,
        heap="256m",
        settings={"thread_pool.write.queue_size": 1, "thread_pool.write.size": 1},
    )
    try:
        cluster.start(timeout=300)
        yield cluster
    finally:
        cluster.stop()


def _write_rejections(cluster) -> int:
    stats = cluster.request("GET", "/_nodes/stats/thread_pool")
    return sum(int(node["thread_pool"]["write"]["rejected"]) for node in stats["nodes"].values())


def _other_traffic(cluster, index: str, stop: threading.Event, threads: int = 6) -> list[threading.Thread]:
    """Other clients' bulk requests filling the write pools until ``stop`` (one encoder actor on 2 busy cores
    alone does not fill three nodes' queues of one)."""

    def send(k: int) -> None:
        backend = connect(ConnectionConfig(urls=cluster.urls, timeout=60))
        i = 0
        while not stop.is_set():
            lines = []
            for j in range(50):
                lines += [json.dumps({"index": {"_index": index, "_id": f"{k}-{i}-{j}"}}), json.dumps({"k": k})]
            try:
                backend.bulk(lines)
            except ClusterError:
                pass  # a 429 for the whole request: the storm
            i += 1
        backend.close()

    workers = [threading.Thread(target=send, args=(k,), daemon=True) for k in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def test_a_429_storm_on_three_nodes_loses_and_duplicates_nothing(throttled_cluster, ray_session, tmp_path):
    corpus, ids = _corpus(tmp_path, 300)
    index = f"mn-throttled-{os.getpid()}"
    rejected_before = _write_rejections(throttled_cluster)
    stop = threading.Event()
    traffic = _other_traffic(throttled_cluster, f"{index}-other", stop)
    options = {"max_chunk_docs": 10, "initial_backoff": 0.05, "max_backoff": 1.0, "max_retries": 30}
    job = IngestJob(
        corpus,
        index,
        ConnectionConfig(urls=throttled_cluster.urls, timeout=60),
        report_path=tmp_path / "report.json",
        **{**FAST, "writers": 4, "writer_options": options},
    )
    try:
        report = job.run()
    finally:
        stop.set()
        for worker in traffic:
            worker.join(timeout=120)
    assert report.status == "completed" and report.dead_lettered == 0 and report.indexed == len(ids), report
    rejected = _write_rejections(throttled_cluster) - rejected_before
    assert rejected > 0, "no write was rejected (429): the storm did not happen"
    logging.getLogger(__name__).warning("429 storm: %d write(s) rejected by the 3 nodes, all retried", rejected)
    _assert_exactly(throttled_cluster, index, ids)


# -------------------------------------------------------------------------------------- a killed encoder actor
def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _encoder_actor_pids() -> list[int]:
    """This test process's own encoder actors: workers of a raylet that this process started (others' Ray jobs on
    the machine run encoder actors of the same name and are never touched)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::") and b"EncodeBatch" in cmdline:
                if _parent(_parent(int(proc.name))) == os.getpid():  # actor -> raylet -> this process
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
        assert _RESUME_HINT in str(error)
        report = _job(corpus, index, cluster.urls, tmp_path, resume=True).run()
    assert report.status == "completed" and report.dead_lettered == 0
    _assert_exactly(cluster, index, ids)


# ------------------------------------------------------------------------- a 2-node Ray cluster and `ray job submit`
RAY_PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_RAY_PORT", "6400"))  # uses RAY_PORT .. RAY_PORT + 15
# worker processes: the head RAY_WORKER_PORT .. + 49, the worker node RAY_WORKER_PORT + 50 .. + 99
RAY_WORKER_PORT = int(os.environ.get("ECHO_SPLADE_MULTINODE_RAY_WORKER_PORT", str(RAY_PORT + 10000)))


class _RayNode:
    """One `ray start --block` on 127.0.0.1 with every port pinned: [base, base + 5] and 50 worker ports from
    ``workers``; stopped by its own process group (never `ray stop`, which stops every Ray on the machine).

    The agents' ports are pinned on purpose: with a port of 0 the raylet waits (a fixed 15 s in Ray 2.60) for the
    dashboard agent to write the port it bound to a file and aborts when it has not ("Timed out waiting for file
    .../metrics_agent_port_..." in raylet.err; `ray start` then says "The current node timed out during
    startup"): seen on this loaded 2-core machine, where the agent's imports alone take longer than that."""

    def __init__(self, base: int, workers: int, head: bool, temp_dir: Path, resources: str) -> None:
        import subprocess
        import sys

        ports = {
            "--node-manager-port": base,
            "--object-manager-port": base + 1,
            "--metrics-export-port": base + 2,
            "--dashboard-agent-listen-port": base + 3,
            "--dashboard-agent-grpc-port": base + 4,
            "--runtime-env-agent-port": base + 5,
            "--min-worker-port": workers,
            "--max-worker-port": workers + 49,
        }
        args = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--node-ip-address", "127.0.0.1"]
        args += ["--num-cpus", "1", "--resources", resources, "--object-store-memory", str(150 << 20)]
        args += ["--disable-usage-stats"] + [str(x) for kv in ports.items() for x in kv]
        if head:
            args += ["--head", "--port", str(RAY_PORT), "--temp-dir", str(temp_dir), "--include-dashboard", "true"]
            args += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(RAY_PORT + 1)]
            args += ["--ray-client-server-port", str(RAY_PORT + 2)]
        else:
            args += ["--address", f"127.0.0.1:{RAY_PORT}"]
        self.log = open(temp_dir.with_suffix(f".{base}.log"), "ab")
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except Exception:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def _ray_nodes_alive(dashboard: str) -> list[dict]:
    from ray.util.state import list_nodes

    try:
        return [n for n in list_nodes(address=dashboard, detail=True) if n.state == "ALIVE"]
    except Exception:
        return []


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ray_token_mode(monkeypatch) -> None:
    """This process and the Ray processes it starts in Ray's token-authentication mode.

    Ray 2.60 turns token authentication on for a cluster when ~/.ray/auth_token exists (and makes one for a new
    local Ray); its Python clients (job submission, state API) send the token only when their own process is in
    token mode, else every call is answered "Unauthorized: Missing authentication token": the 2-node test waited
    for its head forever when it ran alone (a local ``ray.init`` earlier in the same process switches the mode
    on as a side effect). The mode is read into Ray's config once, so the config is read again here, as Ray
    itself does when it switches the mode on.
    """
    from ray._raylet import Config

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    Config.initialize("")


@pytest.fixture
def ray_two_nodes(tmp_path_factory, monkeypatch):
    """A head (1 CPU, the driver's node) and a worker (1 CPU, resource `encoder`) on 127.0.0.1."""
    _ray_token_mode(monkeypatch)
    temp = Path(f"/tmp/ray-mn-{RAY_PORT}")  # short: Ray's socket paths must stay under 108 bytes
    temp.mkdir(exist_ok=True)
    dashboard = f"http://127.0.0.1:{RAY_PORT + 1}"
    nodes: dict[str, _RayNode] = {}
    try:
        # `ray start` gives its raylet 30 s to register (hard-coded): on a busy machine try twice
        for role, base, workers, resources, alive in (
            ("head", 3, 0, '{"driver": 1}', 1),
            ("worker", 10, 50, '{"encoder": 1}', 2),
        ):
            for _attempt in range(2):
                nodes[role] = _RayNode(RAY_PORT + base, RAY_WORKER_PORT + workers, role == "head", temp, resources)
                try:
                    _wait(
                        lambda n=alive, r=role: (
                            len(_ray_nodes_alive(dashboard)) == n or nodes[r].process.poll() is not None
                        ),
                        150,
                        f"the Ray {role}",
                    )
                except AssertionError:
                    pass
                if nodes[role].process.poll() is None and len(_ray_nodes_alive(dashboard)) == alive:
                    break
                nodes.pop(role).kill()
            else:
                raise AssertionError(f"the Ray {role} did not start twice (see {temp.with_suffix('.*.log')})")
        yield dashboard, nodes
    finally:
        for node in reversed(list(nodes.values())):
            node.kill(signal.SIGTERM)


def _submit(dashboard: str, args: list[str]) -> str:
    import subprocess
    import sys

    ray = str(Path(sys.executable).with_name("ray"))
    # one word each: `ray job submit` quotes every word after `--` (shlex.join); one string would be one command
    entrypoint = [sys.executable, "-m", "echo_splade", "ingest", *shlex.split(" ".join(args))]
    out = subprocess.run(
        [ray, "job", "submit", "--address", dashboard, "--no-wait", "--", *entrypoint],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(w for line in out.splitlines() for w in line.split() if w.strip("'").startswith("raysubmit_")).strip(
        "'"
    )


def _job_status(dashboard: str, job: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(dashboard).get_job_status(job)).rsplit(".", 1)[-1]


def test_ingest_as_a_ray_job_on_two_ray_nodes_places_encoders_on_the_worker_and_resumes_after_losing_it(
    cluster, index, ray_two_nodes, tmp_path
):
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors

    dashboard, nodes = ray_two_nodes
    corpus, ids = _corpus(tmp_path, 300)
    with open(corpus, "a") as fh:  # one record with no text: dead-lettered by the reader on the driver's node
        fh.write(json.dumps({"_id": "no-text", "title": "", "text": " "}) + "\n")
    report = tmp_path / "out" / "report.json"
    args = [f"--corpus {corpus} --index {index} --url {cluster.urls[0]} --url {cluster.urls[1]}"]
    args += ["--model tiny-mistral --max-length 64 --truncate --threads 1 --batch-size 16 --writers 1"]
    args += ["--chunk-docs 25 --shards 3 --replicas 1", f"--report {report}", "--encoder-resources '{\"encoder\": 1}'"]
    job = _submit(dashboard, args)
    worker_id = next(n.node_id for n in _ray_nodes_alive(dashboard) if "encoder" in n.resources_total)

    def encoders():
        actors = list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], detail=True)
        return [a for a in actors if "EncodeBatch" in (a.class_name or "") or "EncodeBatch" in str(a.repr_name)]

    _wait(lambda: _indexed_so_far(cluster, index) >= 25, 400, "the Ray job to index 25 documents")
    placed = encoders()
    assert placed and all(a.node_id == worker_id for a in placed), placed
    nodes.pop("worker").kill()  # the encoder node is lost mid-job
    time.sleep(20)
    if _job_status(dashboard, job) not in ("SUCCEEDED", "FAILED"):
        JobSubmissionClient(dashboard).stop_job(job)  # no node can host an encoder any more
    _wait(lambda: _job_status(dashboard, job) in ("SUCCEEDED", "FAILED", "STOPPED"), 120, "the job to end")
    indexed_before = _indexed_so_far(cluster, index)
    assert 0 < indexed_before

    # the resume path: bring an encoder node back, submit the same command with --resume
    nodes["worker"] = _RayNode(
        RAY_PORT + 10, RAY_WORKER_PORT + 50, False, Path(f"/tmp/ray-mn-{RAY_PORT}"), '{"encoder": 1}'
    )
    _wait(lambda: len(_ray_nodes_alive(dashboard)) == 2, 120, "the Ray worker node to come back")
    again = _submit(dashboard, [*args, "--resume"])
    _wait(lambda: _job_status(dashboard, again) in ("SUCCEEDED", "FAILED", "STOPPED"), 600, "the resumed job")
    logs = JobSubmissionClient(dashboard).get_job_logs(again)
    assert _job_status(dashboard, again) == "SUCCEEDED", logs[-3000:]
    saved = json.loads(report.read_text())  # on the driver's node, where the README says
    dead = [json.loads(line) for line in report.with_name("report.dead-letter.jsonl").read_text().splitlines()]
    assert [d["doc_id"] for d in dead] == ["no-text"] and saved["dead_lettered"] == 1, dead
    assert saved["status"] == "completed" and saved["skipped"] + saved["indexed"] == len(ids), saved
    assert "completed:" in logs
    _assert_exactly(cluster, index, ids)
