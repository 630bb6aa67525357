"""Start and stop the encoder service: a local Ray cluster (loopback, no dashboard), Ray Serve's HTTP proxy
on ``config.host:config.port`` and the :mod:`_encoder_deployment` application."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any, Optional, cast

from echo_splade.ingest import RayRuntime, RayStartError

from ._service_config import ServiceConfig

logger = logging.getLogger(__name__)

APP_NAME = "echo-splade"


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
        from ray import serve

        cfg = self.config
        runtime = RayRuntime()  # $RAY_ADDRESS joins that cluster (replicas spread over it), else a local one
        if cfg.ray_port and not runtime.joins:
            os.environ["RAY_GCS_SERVER_PORT"] = str(cfg.ray_port)
        try:
            started = runtime.start(
                num_cpus=max(2, os.cpu_count() or 1),
                object_store_memory=256 << 20,
                namespace=f"echo-splade-serve-{cfg.port}",
                # no idle workers started ahead: Serve starts exactly the actors it needs
                system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False},
            )
            # stop() shuts down only a local cluster it started; a joined one is left as it is
            self._started_ray = started and not runtime.joins
        except RayStartError as exc:
            raise ServiceStartError(str(exc)) from exc
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
