"""The Ray plumbing of the ingest job: start or join Ray, size the actors, set Ray Data's context."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from echo_splade.client import ConfigurationError

from ._ray_start_error import RayStartError

__all__ = ["AUX_CPUS", "STREAM_BLOCK_BYTES", "RayRuntime", "ray_initialized"]

logger = logging.getLogger(__name__)

#: Logical CPUs reserved for the reader task and for each bulk-writer actor (they mostly wait on I/O).
AUX_CPUS = 0.25
#: Target Ray Data block size of an ingest run: about a dozen raw records, less than one encoder call's output
#: (so each call's documents travel on as soon as it returns; see ``IngestJob._block_plan``).
STREAM_BLOCK_BYTES = 16 * 1024
#: Ray Data loggers raised to a level during a run (the job reports progress itself): the note that the bars
#: are off (a WARNING) and the INFO line at the end of an execution.
_RAY_DATA_CHATTER = {
    "ray.data._internal.progress": logging.ERROR,
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
}


def ray_initialized() -> bool:
    """Whether Ray is already initialised in this process."""
    import ray  # lazy: `import ray` takes seconds; the readers and writers work without it

    return ray.is_initialized()


class RayRuntime:
    """Where a job runs: a Ray cluster it joins, or a local Ray it starts (and shuts down).

    Which one is decided once, here, for the ingest job and the encoder service alike: an explicit
    ``address`` or ``$RAY_ADDRESS`` (set under ``ray job submit``) joins that cluster; otherwise a new local
    cluster of our own (``address="local"``, loopback, no dashboard) even when a ``ray start`` cluster runs
    on the machine (a plain ``ray.init()`` would join that one through ``/tmp/ray/ray_current_cluster``,
    then refuse ``num_cpus``). The local start is retried when Ray's fixed 30 s node registration times out
    (a busy machine), and the failed attempt's processes are stopped.

    Args:
        address: an existing Ray cluster (``"auto"`` or ``"ray://host:10001"``); ``None``: the
            ``RAY_ADDRESS`` environment variable, else a local Ray, unless Ray is already initialised.
    """

    def __init__(self, address: Optional[str] = None) -> None:
        self.address = address
        self.started = False

    @property
    def joins(self) -> bool:
        """Whether :meth:`start` joins an existing cluster (``address`` or ``$RAY_ADDRESS``) rather than start one."""
        return bool(self.address or os.environ.get("RAY_ADDRESS"))

    def start(
        self,
        *,
        num_cpus: Optional[int] = None,
        object_store_memory: Optional[int] = None,
        namespace: Optional[str] = None,
        system_config: Optional[dict] = None,
        attempts: int = 3,
    ) -> bool:
        """Join the cluster (see the class) or start a local one; ``True`` when this call connected Ray
        (:meth:`shutdown` disconnects, or stops the local cluster, then).

        Args:
            num_cpus: of a local cluster (default: this machine's CPUs).
            object_store_memory: of a local cluster, bytes (default: 10 % of RAM, 256 MiB to 2 GiB).
            namespace: the Ray namespace (named actors such as Ray Serve's live in it).
            system_config: Ray ``_system_config`` of a local cluster.
            attempts: local starts tried when Ray's node registration times out.

        Raises:
            RayStartError: the local cluster did not start in ``attempts`` tries.
        """
        import ray  # lazy: see ray_initialized

        if ray.is_initialized():
            return False
        if self.joins:
            address = self.address or os.environ["RAY_ADDRESS"]
            ray.init(address=address, namespace=namespace, logging_level=logging.WARNING, log_to_driver=False)
        else:
            _start_local_ray(
                num_cpus=num_cpus or os.cpu_count() or 1,
                object_store_memory=object_store_memory or _default_object_store_memory(),
                namespace=namespace,
                system_config=system_config,
                attempts=attempts,
            )
        self.started = True
        return True

    def shutdown(self) -> None:
        """Stop Ray when :meth:`start` started it."""
        if self.started:
            import ray  # lazy: see ray_initialized

            ray.shutdown()
            self.started = False

    @staticmethod
    def encoder_resources(
        device: Optional[str],
        actors: Optional[int],
        writers: int,
        torch_threads: Optional[int],
        custom: Optional[dict] = None,
    ) -> tuple[int, dict, Optional[str], Optional[int]]:
        """``(actors, ray resources per actor, device, torch threads)`` of the encoder actors on this cluster.

        ``custom``: custom Ray resources each actor needs (``{"encoder": 1}``: only on nodes started with them).

        Raises:
            ValueError: the asked-for device, actors and writers do not fit the cluster.
        """
        import ray  # lazy: see ray_initialized

        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if device == "cuda" and gpus < 1:
            raise ConfigurationError("device 'cuda' was asked for, but the Ray cluster has no GPU", option="device")
        spare = cpus - AUX_CPUS * (writers + 1)
        extra = {"resources": dict(custom)} if custom else {}  # Ray's form for custom resources
        if gpus >= 1 and device != "cpu":
            n = actors or gpus
            if n > gpus:
                raise ConfigurationError(
                    f"actors={n} GPU actors were asked for, but the Ray cluster has {gpus} GPU(s)", option="actors"
                )
            if spare < n:
                raise ConfigurationError(
                    f"{n} GPU actors need {n} CPUs besides the writers; the cluster has {cpus:g}", option="actors"
                )
            return n, {"num_gpus": 1, "num_cpus": 1, **extra}, "cuda", None
        n = actors or max(1, int(cpus) // 8)
        if spare / n < 0.5:
            raise ConfigurationError(
                f"{n} CPU encoder actors and {writers} writers do not fit in the "
                f"{cpus:g} CPUs of the Ray cluster; use fewer encoder actors",
                option="actors",
            )
        threads = torch_threads or max(1, int(cpus) // n)
        # an actor runs on ONE node: never ask for more CPUs than the largest node has (on two 1-CPU nodes a
        # request of 1.25 CPUs, the cluster's spare divided among the actors, could never be placed: the job hung)
        largest = max(
            (float(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")), default=cpus
        )
        return n, {"num_cpus": min(float(threads), spare / n, largest), **extra}, "cpu", threads

    @staticmethod
    @contextlib.contextmanager
    def data_context(block_bytes: int = STREAM_BLOCK_BYTES) -> Iterator[None]:
        """Ray Data settings for one run, put back afterwards (the context is global to the driver).

        ``block_bytes``: Ray Data's ``target_max_block_size`` (blocks merged up to it, larger ones split).
        """
        from ray.data.context import DataContext  # lazy: see ray_initialized

        context = DataContext.get_current()
        wanted = {
            "enable_progress_bars": False,
            "enable_operator_progress_bars": False,
            "print_on_execution_start": False,
            "enable_auto_log_stats": False,
            "raise_original_map_exception": True,
            # Small blocks keep the stages streaming (the default 128 MiB would merge a whole
            # corpus into one block: no overlap of encoding and writing, no progress until the end).
            "target_max_block_size": block_bytes,
        }
        previous = {k: getattr(context, k) for k in wanted}
        for key, value in wanted.items():
            setattr(context, key, value)
        # The job reports its own progress: Ray Data's notes on the bars being off, the end of an
        # execution and idle writer actors on a small corpus are noise to the job's user.
        levels = {name: logging.getLogger(name).level for name in _RAY_DATA_CHATTER}
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="The minimum number of concurrent actors", category=UserWarning
                )
                for name, level in _RAY_DATA_CHATTER.items():
                    logging.getLogger(name).setLevel(level)
                yield
        finally:
            for key, value in previous.items():
                setattr(context, key, value)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _default_object_store_memory() -> int:
    """10 % of this machine's memory, at least 256 MiB and at most 2 GiB."""
    return int(min(2 << 30, max(256 << 20, 0.1 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))))


def _start_local_ray(
    *, num_cpus: int, object_store_memory: int, namespace: Optional[str], system_config: Optional[dict], attempts: int
) -> None:
    """A new local Ray cluster on 127.0.0.1 without the dashboard. Ray gives its raylet a fixed 30 s to register,
    which a busy shared machine can miss ("The current node timed out during startup"): retried."""
    import ray  # lazy: see ray_initialized

    for attempt in range(1, attempts + 1):
        before = _ray_children()
        try:
            ray.init(
                # "local": always a new cluster of our own; without it Ray joins any cluster it finds
                # running on the machine (/tmp/ray/ray_current_cluster), e.g. another user's job
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                num_cpus=num_cpus,
                object_store_memory=object_store_memory,
                logging_level=logging.WARNING,
                log_to_driver=False,
                namespace=namespace,
                _system_config=system_config,
            )
            return
        except Exception as exc:  # Ray raises a bare Exception for this timeout
            ray.shutdown()
            # a failed ray.init leaves the GCS/raylet it started running, unknown to ray.shutdown()
            for pid in _ray_children() - before:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise RayStartError(f"could not start a local Ray cluster in {attempt} attempt(s): {exc}") from exc
            logger.warning("Ray start attempt %d timed out (busy machine?); retrying", attempt)


def _ray_children() -> set[int]:
    """Pids of this process's child processes that run Ray (GCS server, raylet, monitor, log monitor, ...)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"/site-packages/ray/" in cmdline:
            found.add(int(entry))
    return found
