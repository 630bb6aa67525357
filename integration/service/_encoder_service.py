"""Start and stop the encoder service: a local Ray cluster (loopback, no dashboard), Ray Serve's HTTP proxy
on ``config.host:config.port`` and the :mod:`_encoder_deployment` application."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, cast

from ._service_config import ServiceConfig

logger = logging.getLogger(__name__)

APP_NAME = "echo-splade"


def _init_local_ray(namespace: str, attempts: int = 3) -> None:
    """A local Ray cluster on 127.0.0.1 without the dashboard. Ray gives its raylet a fixed 30 s to register,
    which a busy shared machine can miss ("The current node timed out during startup"): retried."""
    import ray

    for attempt in range(1, attempts + 1):
        before = _ray_children()
        try:
            ray.init(
                # "local": always a new cluster of our own; without it Ray joins any cluster it finds
                # running on the machine (/tmp/ray/ray_current_cluster), e.g. another user's job
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                num_cpus=max(2, os.cpu_count() or 1),
                object_store_memory=256 << 20,
                logging_level=logging.WARNING,
                log_to_driver=False,
                namespace=namespace,
                # no idle workers started ahead: Serve starts exactly the actors it needs
                _system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False},
            )
            return
        except Exception as exc:  # Ray raises a bare Exception for this timeout
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise ServiceStartError(f"could not start a local Ray cluster: {exc}") from exc
            logger.warning("Ray start attempt %d timed out (busy machine?); retrying", attempt)
            ray.shutdown()
            # a failed ray.init leaves the GCS/raylet it started running, unknown to ray.shutdown()
            for pid in _ray_children() - before:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


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


class ServiceStartError(RuntimeError):
    """The service did not become healthy in time (or Ray could not start)."""


class EncoderService:
    """The encoder service in this process.

    Example::

        service = EncoderService(ServiceConfig(model="echo-splade-bert-tiny", port=8600))
        service.start()          # returns once GET /health answers 200
        ...                      # POST http://127.0.0.1:8600/encode
        service.stop()           # in-flight requests finish first (graceful)

    ``start`` connects to the Ray cluster named by ``$RAY_ADDRESS`` when set (replicas spread over it),
    else starts a local one bound to 127.0.0.1 without the dashboard, which ``stop`` shuts down again.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._started_ray = False

    @property
    def url(self) -> str:
        return self.config.url

    def start(self, timeout: float = 300.0) -> None:
        import ray  # lazy: heavy
        from ray import serve

        cfg = self.config
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                if cfg.ray_port:
                    os.environ["RAY_GCS_SERVER_PORT"] = str(cfg.ray_port)
                _init_local_ray(f"echo-splade-serve-{cfg.port}")
                self._started_ray = True
        from ._encoder_deployment import EncoderDeployment  # lazy: imports ray serve, FastAPI

        serve.start(http_options={"host": cfg.host, "port": cfg.port}, logging_config={"log_level": "WARNING"})
        deployment = cast(Any, EncoderDeployment).options(
            num_replicas=cfg.replicas,
            # the replica sets its own torch threads; Ray's per-actor CPU count would pin it to one thread
            ray_actor_options={"num_cpus": 0, "num_gpus": 1 if (cfg.device or "").startswith("cuda") else 0},
            max_ongoing_requests=max(cfg.max_texts, cfg.max_batch_size * 4, 64),
        )
        try:
            serve.run(deployment.bind(cfg.to_dict()), name=APP_NAME, route_prefix="/", blocking=False)
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("encoder service ready at %s (model %s)", self.url, cfg.model)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise ServiceStartError(f"encoder service at {self.url} not healthy after {timeout:.0f}s ({last})")

    def health(self) -> Optional[dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Graceful: the application is deleted first while the HTTP proxy still runs, so every replica
        finishes the requests it holds (up to 30 s) and their answers get out; then Serve and Ray stop."""
        import ray
        from ray import serve

        if ray.is_initialized():
            try:
                serve.delete(APP_NAME, _blocking=True)
            except Exception as exc:  # not deployed (a failed start) or already gone
                logger.info("serve.delete(%s): %s", APP_NAME, exc)
            try:
                serve.shutdown()
            except Exception as exc:  # shutting down: report, keep going
                logger.warning("serve.shutdown failed: %s", exc)
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False

    def __enter__(self) -> EncoderService:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
