"""The Ray Serve deployment: one encoder per replica behind a FastAPI app, texts batched across requests.

Imported only by :class:`EncoderService` (it imports ray and, in the replica, torch).

Routes: ``POST /encode`` (see ``_encode_request``), ``GET /health``, ``GET /metrics`` (Prometheus),
``GET /info``, ``GET /openapi.json`` (FastAPI). Every error is JSON ``{"error": {"type", "reason"}, "status"}``.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (Request) at runtime.
import asyncio
import logging
import os
import time
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from echo_splade.mappings import FEATURE_SCHEME_VERSION, FLOAT_MIN_NORMAL, sparse_to_features

from ._encode_request import EncodeRequest, EncodeResponse, parse_encode_request
from ._request_error import RequestError
from ._service_config import ServiceConfig
from ._service_metrics import CONTENT_TYPE, ServiceMetrics

logger = logging.getLogger(__name__)

app = FastAPI(
    title="echo-splade encoder service",
    version="1",
    description="Learned sparse (SPLADE) vectors with feature names as `echo-splade ingest` stores them; "
    "usable as an OpenSearch ML Commons remote model (sparse_encoding) and an Elasticsearch custom "
    "inference endpoint (sparse_embedding).",
)


def _error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = "not_found" if exc.status_code == 404 else "invalid_request"
    return _error_response(RequestError(exc.status_code, kind, str(exc.detail)))


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error_response(RequestError(400, "invalid_request", str(exc.errors())))


_ENCODE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EncodeRequest.model_json_schema()}},
    }
}


@serve.deployment(
    name="EchoSpladeEncoder",
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=30,
    health_check_period_s=10,
)
@serve.ingress(app)
class EncoderDeployment:
    """One replica: loads the encoder once, warms it up, then answers the routes above."""

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = ServiceConfig(**config)
        self.config = cfg
        import torch  # lazy: only replicas run the model

        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.replicas)
        torch.set_num_threads(threads)
        from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

        self.encoder = EchoSpladeEncoder.from_pretrained(
            cfg.model,
            adapter=cfg.adapter,
            device=cfg.device,
            batch_size=cfg.max_batch_size,
            quantize=cfg.quantize,
            smooth=cfg.smooth,
            compile=cfg.compile,
        )
        self.model_name = getattr(self.encoder, "source", None) or self.encoder.model_id
        self.stats = ServiceMetrics(replica=serve.get_replica_context().replica_id.unique_id)
        batching: Any = self._encode_text  # the @serve.batch wrapper has the setters
        batching.set_max_batch_size(cfg.max_batch_size)
        batching.set_batch_wait_timeout_s(cfg.batch_wait_ms / 1000.0)
        self.encoder.encode(["warm up"], "query")  # the first call pays one-off costs; /health waits for it
        logger.info("replica ready: %r, %d torch threads", self.encoder, threads)

    # ----------------------------------------------------------------- batching
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _encode_text(self, items: list[tuple[str, str, Optional[int], float]]) -> list[Any]:
        """``(text, kind, top_k, min_weight)`` per text, from any number of concurrent requests -> one
        ``{feature: weight}`` dict (or the exception) per text. One model call per distinct (kind, pruning)."""
        self.stats.batch_size.observe(len(items))
        results: list[Any] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, (_text, kind, top_k, min_weight) in enumerate(items):
            groups.setdefault((kind, top_k, min_weight), []).append(i)
        for (kind, top_k, min_weight), rows in groups.items():
            texts = [items[i][0] for i in rows]
            try:
                vectors = await asyncio.to_thread(self.encoder.encode, texts, kind, top_k=top_k, min_weight=min_weight)
                for i, vec in zip(rows, vectors):
                    results[i] = sparse_to_features(self.encoder.tokens(vec))
            except (ValueError, RuntimeError) as exc:
                logger.warning("encoding %d texts failed: %s", len(texts), exc)
                for i in rows:
                    results[i] = RequestError(500, "encoding_failed", f"{type(exc).__name__}: {exc}")
            self.stats.texts.labels(kind=kind).inc(len(texts))
        return results

    # ------------------------------------------------------------------ routes
    def _done(self, route: str, started: float, status: int) -> None:
        self.stats.requests.labels(route=route, status=str(status)).inc()
        self.stats.latency.labels(route=route).observe(time.perf_counter() - started)

    @app.post("/encode", response_model=EncodeResponse, openapi_extra=_ENCODE_BODY)
    async def encode(self, request: Request) -> Any:
        """Encode texts as documents or queries; feature names as `echo-splade ingest` stores them."""
        started = time.perf_counter()
        try:
            body = parse_encode_request(await request.body(), self.config.max_texts, self.config.max_chars)
            # Lucene rejects feature weights below Float.MIN_NORMAL: prune them, as ingest does
            min_weight = max(body.min_weight or 0.0, FLOAT_MIN_NORMAL)
            features = await asyncio.gather(
                *(self._encode_text((text, body.kind, body.top_k, min_weight)) for text in body.texts)
            )
            for item in features:
                if isinstance(item, RequestError):
                    raise item
            answer = {
                "model": self.model_name,
                "model_rev": self.encoder.model_rev,
                "feature_scheme": FEATURE_SCHEME_VERSION,
                "kind": body.kind,
                "response": features,
                "embeddings": [{"embedding": [{"token": k, "weight": w} for k, w in f.items()]} for f in features],
            }
        except RequestError as error:
            self.stats.errors.labels(type=error.error_type).inc()
            self._done("/encode", started, error.status)
            return _error_response(error)
        except Exception as exc:  # the server keeps serving; the client gets JSON, the log gets the trace
            logger.exception("unexpected error in /encode")
            internal = RequestError(500, "internal", f"{type(exc).__name__}: {exc}")
            self.stats.errors.labels(type=internal.error_type).inc()
            self._done("/encode", started, 500)
            return _error_response(internal)
        self._done("/encode", started, 200)
        return JSONResponse(answer)

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        """200 once this replica has loaded and warmed up its encoder (before that the route does not answer)."""
        return {"status": "ok", "model": self.model_name, "model_rev": self.encoder.model_rev}

    @app.get("/info")
    async def info(self) -> dict[str, Any]:
        """The model, its revision, the feature scheme and the service limits."""
        cfg = self.config
        return {
            "model": self.model_name,
            "model_rev": self.encoder.model_rev,
            "feature_scheme": FEATURE_SCHEME_VERSION,
            "vocab_size": self.encoder.vocab_size,
            "max_batch_size": cfg.max_batch_size,
            "batch_wait_ms": cfg.batch_wait_ms,
            "max_texts": cfg.max_texts,
            "max_chars": cfg.max_chars,
            "replicas": cfg.replicas,
            "pid": os.getpid(),  # the replica process (its memory: /proc/<pid>/status)
        }

    @app.get("/metrics")
    async def metrics(self) -> Response:
        """Prometheus text format: requests, texts, batch sizes, latency histogram, errors."""
        return Response(self.stats.render(), media_type=CONTENT_TYPE)
