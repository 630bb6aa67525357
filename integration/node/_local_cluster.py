"""A real multi-node cluster on this machine: several :class:`LocalNode` processes that form one cluster.

Node ``i`` (0-based) listens on HTTP ``port + i`` and transport ``transport_port + i``, all on 127.0.0.1,
with its own folder ``nodes/<engine>-<port + i>/`` (config, data, logs) under the home. The nodes find
each other through ``discovery.seed_hosts`` (every member's transport address) and bootstrap the first
election from ``cluster.initial_cluster_manager_nodes`` (``cluster.initial_master_nodes`` before
OpenSearch 2). Every member holds all roles (cluster manager, data, ingest).

``start`` starts every member that is not running (all at once: a new cluster elects its manager only
when a majority is up) and waits until each answers and the cluster has the wanted health; run again, it
restarts only the members that are down. ``stop`` stops them all.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Optional, TypeVar

from echo_splade.client import ConfigurationError

from ._local_node import CLUSTER_NAME, LocalNode, NodeStartError

logger = logging.getLogger(__name__)

#: The file in each member's node folder that names the cluster it belongs to.
MEMBERSHIP_FILE = "cluster-member.json"
MAX_NODES = 9
T = TypeVar("T")


class LocalCluster:
    """``nodes`` local nodes forming one cluster, bound to 127.0.0.1.

    Example::

        cluster = LocalCluster(nodes=3, port=9450, transport_port=9700, heap="384m")
        cluster.start(timeout=240)     # [True, True, True]: which members were started now
        cluster.urls                   # ('http://127.0.0.1:9450', ..., 'http://127.0.0.1:9452')
        cluster.members[1].pid         # the process of one member (e.g. to kill it in a test)
        cluster.stop()

    Args:
        nodes: number of members, 2..9.
        engine, version, home, download_dir: as for :class:`LocalNode`.
        port: HTTP port of the first member (the others follow); default the engine's usual port.
        transport_port: transport port of the first member (the others follow); default ``port + 100``.
        heap: JVM heap per member (keep it small: ``nodes`` JVMs run at once).
        settings: extra settings for every member.
    """

    def __init__(
        self,
        nodes: int = 3,
        engine: str = "opensearch",
        version: Optional[str] = None,
        port: Optional[int] = None,
        transport_port: Optional[int] = None,
        home: Optional[os.PathLike | str] = None,
        heap: str = "384m",
        settings: Optional[Mapping[str, Any]] = None,
        download_dir: Optional[os.PathLike | str] = None,
    ) -> None:
        if not isinstance(nodes, int) or not 2 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be an integer in 2..{MAX_NODES}, got {nodes!r}")
        first = LocalNode(engine=engine, version=version, port=port, home=home, heap=heap, download_dir=download_dir)
        http_ports = [first.port + i for i in range(nodes)]
        transport = first.port + 100 if transport_port is None else int(transport_port)
        transport_ports = [transport + i for i in range(nodes)]
        clash = sorted(set(http_ports) & set(transport_ports))
        if clash or max(http_ports + transport_ports) > 65535 or transport < 1024:
            raise ValueError(
                f"the HTTP ports {http_ports[0]}..{http_ports[-1]} and transport ports "
                f"{transport_ports[0]}..{transport_ports[-1]} must be distinct and within 1024..65535"
            )
        self.name = f"{CLUSTER_NAME}-{first.engine}-{first.port}"
        names = [f"{first.engine}-{p}" for p in http_ports]
        major = int(first.version.split(".")[0])
        bootstrap_key = (
            "cluster.initial_cluster_manager_nodes"
            if first.engine == "opensearch" and major >= 2
            else "cluster.initial_master_nodes"
        )
        self.transport_ports = tuple(transport_ports)
        self.members: tuple[LocalNode, ...] = tuple(
            LocalNode(
                engine=engine,
                version=version,
                port=http_port,
                home=first.home,
                heap=heap,
                download_dir=first.download_dir,
                settings={
                    "cluster.name": self.name,
                    "discovery.type": None,
                    "transport.port": transport_port,
                    "discovery.seed_hosts": [f"127.0.0.1:{p}" for p in transport_ports],
                    bootstrap_key: names,
                    **dict(settings or {}),
                },
            )
            for http_port, transport_port in zip(http_ports, transport_ports)
        )

    # ------------------------------------------------------------------ names
    @property
    def engine(self) -> str:
        return self.members[0].engine

    @property
    def version(self) -> str:
        return self.members[0].version

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(member.url for member in self.members)

    @property
    def url(self) -> str:
        """The first member's URL."""
        return self.members[0].url

    def __repr__(self) -> str:
        return (
            f"LocalCluster(engine={self.engine!r}, version={self.version!r}, nodes={len(self.members)}, "
            f"urls={self.urls[0]}..{self.urls[-1]}, transport={self.transport_ports[0]}..)"
        )

    # ------------------------------------------------------------------ start
    def start(self, timeout: float = 300.0, wait_for_status: str = "green") -> list[bool]:
        """Start every member that is not running; wait until all answer and the cluster is ``wait_for_status``.

        Returns, per member, whether it was started now. Raises ``NodeStartError`` (with the failing
        member's log tail) or ``ValueError`` (a port is taken, or a node folder belongs to another cluster).
        """
        if wait_for_status not in ("green", "yellow"):
            raise ValueError(f"wait_for_status must be 'green' or 'yellow', got {wait_for_status!r}")
        deadline = time.monotonic() + timeout
        for member in self.members:
            self._claim(member)
        # all at once: the first election needs a majority of the members, so no member can wait alone
        started = self._each(lambda member: member.start(timeout=timeout, wait_for_status="yellow"))
        self._after_start()
        self.wait_for(wait_for_status, max(deadline - time.monotonic(), 1.0), nodes=len(self.members))
        return started

    def _claim(self, member: LocalNode) -> None:
        """Mark the member's node folder as this cluster's; refuse one that holds another cluster's data."""
        marker = member.node_dir / MEMBERSHIP_FILE
        record = {"cluster": self.name, "nodes": [m.node_dir.name for m in self.members]}
        if marker.is_file():
            held = json.loads(marker.read_text())
            if held.get("cluster") == self.name:
                return
            raise ValueError(f"{member.node_dir} belongs to the cluster {held.get('cluster')!r}, not {self.name!r}")
        data = member.node_dir / "data"
        if data.is_dir() and any(data.iterdir()):
            raise ConfigurationError(
                f"{member.node_dir} holds the data of a node that is not a member of {self.name!r} "
                f"(a single node started on port {member.port}?): stop it and remove that folder, or pick "
                f"another port",
                option="port",
            )
        member.node_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(record) + "\n")

    def _after_start(self) -> None:
        """Undo the single-node defaults a member sets on start: with several nodes, new indices get a replica."""
        if self.engine == "opensearch":
            self.request("PUT", "/_cluster/settings", {"persistent": {"cluster.default_number_of_replicas": 1}})
        else:
            self.request("DELETE", "/_index_template/echo-splade-single-node", None, missing_ok=True)

    def wait_for(self, status: str = "green", timeout: float = 120.0, nodes: Optional[int] = None) -> dict:
        """Wait until the cluster (asked through any live member) is ``status`` with ``nodes`` members;
        return its health. Raises ``NodeStartError`` on timeout."""
        deadline = time.monotonic() + timeout
        wanted = f"&wait_for_nodes={nodes}" if nodes else ""
        last: Any = "no member answers"
        while time.monotonic() < deadline:
            try:
                health = self.request("GET", f"/_cluster/health?wait_for_status={status}{wanted}&timeout=5s")
                if not health.get("timed_out"):
                    return health
                last = f"{health.get('status')}, {health.get('number_of_nodes')} node(s)"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(1.0)
        tails = "\n".join(m.log_tail(15) for m in self.members)
        raise NodeStartError(f"cluster {self.name} not {status} after {timeout:.0f}s ({last})", tails)

    # ------------------------------------------------------------------- stop
    def stop(self, timeout: float = 60.0) -> list[bool]:
        """Stop every member; per member, whether it was running."""
        return self._each(lambda member: member.stop(timeout=timeout))

    # ----------------------------------------------------------------- status
    def status(self) -> dict:
        """``{"name", "engine", "version", "urls", "running", "health", "number_of_nodes", "members", "nodes"}``:
        ``members`` is each member's ``{"url", "transport", "pid", "running", "node_dir"}`` as seen from here
        (its process), ``nodes`` the cluster's own view (``_cat/nodes``), ``running`` whether every member runs."""
        members = [
            {
                "name": m.node_dir.name,
                "url": m.url,
                "transport": f"127.0.0.1:{t}",
                "pid": m.pid,
                "running": m.pid is not None,
                "node_dir": str(m.node_dir),
            }
            for m, t in zip(self.members, self.transport_ports)
        ]
        info: dict[str, Any] = {
            "name": self.name,
            "engine": self.engine,
            "version": self.version,
            "urls": list(self.urls),
            "members": members,
            "running": all(m["running"] for m in members),
        }
        try:
            health = self.request("GET", "/_cluster/health")
            info["health"] = health.get("status")
            info["number_of_nodes"] = health.get("number_of_nodes")
            info["nodes"] = self.request("GET", "/_cat/nodes?format=json")
        except (OSError, ValueError) as exc:
            info["error"] = str(exc)
        return info

    # ------------------------------------------------------------------- http
    def request(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        """One JSON request to the first member that answers (tried in order); the decoded response."""
        errors = []
        for member in self.members:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(
                member.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and missing_ok:
                    return None
                if exc.code < 500:
                    raise ValueError(f"{method} {path} on {member.url}: HTTP {exc.code} {exc.read()[:300]!r}") from None
                errors.append(f"{member.url}: HTTP {exc.code}")
            except OSError as exc:
                errors.append(f"{member.url}: {exc}")
        raise ConnectionError(f"{method} {path}: no member answered ({'; '.join(errors)})")

    def _each(self, action: Callable[[LocalNode], T]) -> list[T]:
        """``action`` on every member at once; the first error is raised after all have finished."""
        with concurrent.futures.ThreadPoolExecutor(len(self.members)) as pool:
            futures = [pool.submit(action, member) for member in self.members]
            concurrent.futures.wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]
