"""The Ray plumbing of the ingest job: start or join Ray, size the actors, set Ray Data's context."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Optional

from echo_splade.client import ConfigurationError

__all__ = ["AUX_CPUS", "STREAM_BLOCK_BYTES", "RayRuntime", "ray_initialized"]

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
    """Where the ingest job runs: a Ray cluster it joins, or a local Ray it starts (and shuts down).

    Args:
        address: an existing Ray cluster (``"auto"`` or ``"ray://host:10001"``); ``None``: the
            ``RAY_ADDRESS`` environment variable (set under ``ray job submit``), else a local Ray
            with this machine's CPUs, unless Ray is already initialised.
    """

    def __init__(self, address: Optional[str] = None) -> None:
        self.address = address
        self.started = False

    def start(self) -> bool:
        """Connect to / start Ray; ``True`` when this runtime started it (:meth:`shutdown` stops it then)."""
        import ray  # lazy: see ray_initialized

        if ray.is_initialized():
            return False
        # Under `ray job submit` RAY_ADDRESS names the cluster the job belongs to.
        address = self.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            memory = int(min(2 << 30, max(256 << 20, 0.1 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))))
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                object_store_memory=memory,
                logging_level=logging.WARNING,
                log_to_driver=False,
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
    def driver_is_the_only_cpu_node(resources: dict) -> bool:
        """Whether this driver is the cluster's only node, without a GPU for the actors and not a Ray client
        (then work for the actors' node can run in the driver itself)."""
        import ray  # lazy: see ray_initialized
        from ray.util.client import ray as ray_client

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return len(nodes) == 1 and not ray_client.is_connected() and "num_gpus" not in resources

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
