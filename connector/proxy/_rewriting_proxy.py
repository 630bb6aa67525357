from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any, Optional

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ._body_rewriter import BodyRewriter, RewriteOutcome
from ._proxy_config import ProxyConfig
from ._query_encoder import EncoderUnavailable

logger = logging.getLogger(__name__)

__all__ = ["RewritingProxy", "REWRITE_HEADER"]

#: Response header on requests to configured aliases: what the proxy did to the body.
REWRITE_HEADER = "x-echo-splade-rewrite"
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection; host and length are set anew.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_DROP_REQUEST = _HOP | {b"host", b"content-length"}
#: answers up to this size (by their Content-Length) are read whole and sent in one piece; larger ones stream
_BUFFERED_MAX = 64 * 1024


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c < "\x7f" else "?" for c in text)[:80]


def _json_of(response: Response) -> Any:
    """The JSON of a buffered answer (gunzipped where the upstream compressed it), or ``None``."""
    content = bytes(response.body)
    if any(k.lower() == b"content-encoding" and v.strip().lower() == b"gzip" for k, v in response.raw_headers):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError):
            return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def engine_error(status: int, error_type: str, reason: str) -> Response:
    """An error in the format OpenSearch and Elasticsearch answer with."""
    cause = {"type": error_type, "reason": reason}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    return Response(json.dumps(body), status_code=status, media_type="application/json; charset=UTF-8")


class RewritingProxy:
    """A reverse proxy in front of a cluster that rewrites search bodies on configured aliases.

    Every request passes through as sent (method, path and query string byte for byte, headers
    including ``Authorization``, body), and every response comes back as the upstream sent it
    (status, headers, the body streamed chunk by chunk, compressed or not), except:

    - ``_search`` / ``_count`` on a configured alias and ``_msearch`` searches naming one: the body
      goes through :class:`BodyRewriter` (only the rewritten clauses change) and the response carries
      ``X-Echo-Splade-Rewrite`` saying what was done;
    - no upstream reachable: ``502`` with a JSON error in the engine's format (each upstream is tried
      in turn, round robin, before giving up); no answer within the timeout: ``504``;
    - the query encoder fails: ``503`` (``on_encoder_error="fail"``) or the unmodified body with
      ``X-Echo-Splade-Rewrite: passthrough; encoder unavailable ...``.

    :meth:`app` is the ASGI application; run it with uvicorn (:meth:`serve`). Headers,
    bodies and credentials are never logged.
    """

    def __init__(self, config: ProxyConfig, rewriter: BodyRewriter, prepare: bool = True) -> None:
        self.config = config
        self.rewriter = rewriter
        self.prepare = prepare
        self._next = itertools.cycle(range(len(config.upstreams)))
        self._bases = [httpx.URL(u) for u in config.upstreams]  # parsed once
        self._client: Optional[httpx.AsyncClient] = None
        self._lifespan_app = Starlette(lifespan=self._lifespan)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI application: HTTP requests go straight to the proxy (no routing or middleware per
        request); the lifespan (the upstream client, preparing the aliases) runs through Starlette."""
        if scope["type"] != "http":
            await self._lifespan_app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            response = await self._handle(scope, b"".join(chunks))
        except Exception as exc:  # a bug here must not look like the cluster's answer
            logger.exception("proxy error on %s %s", scope["method"], scope["path"])
            response = engine_error(500, "echo_splade_proxy_error", f"{type(exc).__name__}: {exc}")
        await response(scope, receive, send)

    # -- lifecycle -----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._client = self._make_client()
        if self.prepare and self.rewriter.rules:
            try:
                await run_in_threadpool(self.rewriter.prepare)
            except Exception as exc:  # the cluster may come up later: each alias retries on first use
                logger.warning(
                    "could not prepare the rewriting of %s yet (%s); retried on first use",
                    list(self.rewriter.rules),
                    exc,
                )
        try:
            yield
        finally:
            await self._client.aclose()

    def _make_client(self) -> httpx.AsyncClient:
        verify: Any = True
        if not self.config.verify_certs:
            verify = False
        elif self.config.ca_certs:
            verify = ssl.create_default_context(cafile=self.config.ca_certs)
        return httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(self.config.timeout, connect=10.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            follow_redirects=False,
            trust_env=False,
        )

    def server_options(self) -> dict[str, Any]:
        """uvicorn's options for this proxy (TLS, no headers of its own, no access log)."""
        return {
            "ssl_certfile": self.config.certfile,
            "ssl_keyfile": self.config.keyfile,
            "access_log": False,  # an access log line names no header, but keep logs minimal
            "server_header": False,  # the upstream's headers come back as they are
            "date_header": False,
            "interface": "asgi3",  # app is a bound coroutine method, which uvicorn's detection takes for ASGI2
            "proxy_headers": False,  # X-Forwarded-* are the client's headers: passed on, not interpreted
        }

    def serve(self) -> None:
        """Run the proxy with uvicorn until interrupted."""
        import uvicorn

        # httpcore logs response headers at DEBUG; nothing of a request's headers goes to any log
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        uvicorn.run(
            self.app, host=self.config.host, port=self.config.port, log_level="warning", **self.server_options()
        )

    # -- one request -----------------------------------------------------------
    async def _handle(self, scope: Any, body: bytes) -> Response:
        method = scope["method"]
        status: Optional[str] = None
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        target = self.rewriter.target(method, scope["path"], scope.get("query_string") or b"")
        outcome: Optional[RewriteOutcome] = None
        if target is not None:
            encoding = next((v.decode("latin-1") for k, v in raw_headers if k.lower() == b"content-encoding"), None)
            rewritten = await self._rewrite(target, body, encoding)
            if isinstance(rewritten, Response):
                return rewritten
            outcome = rewritten
            body, status = outcome.body, outcome.status
        headers = [(k, v) for k, v in raw_headers if k.lower() not in _DROP_REQUEST]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            raw_path += b"?" + scope["query_string"]
        if outcome is None or outcome.exhaustive is None:
            return await self._forward(method, raw_path, headers, body, status)
        # two-phase: read the answer whole; where phase 1 fell short, the exhaustive body goes instead
        response = await self._forward(method, raw_path, headers, body, status, buffer=True)
        if response.status_code != 200 or outcome.fell_short(_json_of(response)):
            logger.info("two-phase search on %s fell short; sent again exhaustively", scope["path"])
            return await self._forward(
                method, raw_path, headers, outcome.exhaustive, "rewritten; phase 1 fell short, exhaustive"
            )
        return response

    async def _rewrite(self, target: Any, body: bytes, encoding: Optional[str]) -> RewriteOutcome | Response:
        encoding = (encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return RewriteOutcome(body, f"passthrough; {_header_safe(encoding)}-encoded body")
        try:
            if encoding == "identity":
                return await run_in_threadpool(self.rewriter.rewrite, target, body)
            # a gzip-compressed body (opensearch-py's http_compress, the JS client's compression: "gzip")
            try:
                plain = gzip.decompress(body)
            except (OSError, EOFError):
                return RewriteOutcome(body, "passthrough; malformed gzip body")
            outcome = await run_in_threadpool(self.rewriter.rewrite, target, plain)
            if not outcome.rewritten:
                return dataclasses.replace(outcome, body=body)
            exhaustive = gzip.compress(outcome.exhaustive) if outcome.exhaustive is not None else None
            return dataclasses.replace(outcome, body=gzip.compress(outcome.body), exhaustive=exhaustive)
        except EncoderUnavailable as exc:
            if self.config.on_encoder_error == "fail":
                logger.error("%s", exc)
                return engine_error(
                    503, "echo_splade_encoder_unavailable", f"{exc} (the proxy runs with on_encoder_error = fail)"
                )
            logger.warning("%s; the query passes through unmodified", exc)
            return RewriteOutcome(body, "passthrough; encoder unavailable")

    async def _forward(
        self,
        method: str,
        raw_path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        status: Optional[str],
        buffer: bool = False,
    ) -> Response:
        """The upstream's answer to the request (``buffer``: read whole, whatever its size)."""
        client = self._client
        if client is None:
            raise RuntimeError("the proxy's lifespan has not started (run the app with uvicorn)")
        upstreams = self.config.upstreams
        first = next(self._next)
        failures = []
        for attempt in range(len(upstreams)):
            base = upstreams[(first + attempt) % len(upstreams)]
            url = self._bases[(first + attempt) % len(upstreams)].copy_with(raw_path=raw_path)
            # a bare Request, not client.build_request: that adds the client's default headers (Accept-Encoding, ...)
            request = httpx.Request(method, url, headers=headers, content=body)
            try:
                upstream = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(f"{base}: {exc or type(exc).__name__}")
                continue
            except httpx.TimeoutException as exc:
                return engine_error(504, "timeout_exception", f"no answer from {base} in time: {type(exc).__name__}")
            except httpx.TransportError as exc:
                return engine_error(502, "proxy_upstream_error", f"{base}: {type(exc).__name__}: {exc}")
            out = [(k, v) for k, v in upstream.headers.raw if k.lower() not in _HOP]
            if status is not None:
                out.append((REWRITE_HEADER.encode(), status.encode("latin-1", "replace")))
            length = upstream.headers.get("content-length")
            response: Response
            if buffer or (length is not None and length.isdigit() and int(length) <= _BUFFERED_MAX):
                # a small answer in one piece (fewer writes); the raw bytes: a compressed body stays compressed
                try:
                    content = b"".join([chunk async for chunk in upstream.aiter_raw()])
                except httpx.TransportError as exc:
                    return engine_error(502, "proxy_upstream_error", f"{base}: {type(exc).__name__}: {exc}")
                finally:
                    await upstream.aclose()
                response = Response(content, status_code=upstream.status_code)
                if length is None:  # it came chunked: sent on with its length
                    out.append((b"content-length", str(len(content)).encode()))
            else:  # large or unknown length: streamed chunk by chunk as it arrives
                response = StreamingResponse(
                    upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
                )
            response.raw_headers = out
            return response
        logger.error("no upstream reachable: %s", "; ".join(failures))
        return engine_error(502, "connect_exception", "no upstream reachable: " + "; ".join(failures))
