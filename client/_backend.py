from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from ._connection import ENGINES, ConnectionConfig

logger = logging.getLogger(__name__)

__all__ = ["AuthenticationError", "AuthorizationError", "Backend", "ClusterError", "TLSError", "connect", "wrap_client"]

# Statuses worth retrying: throttling and gateway-ish failures.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class ClusterError(Exception):
    """A request the cluster answered with an error, or could not be reached.

    ``status`` is the HTTP status (``None`` when the cluster was unreachable),
    ``error_type``/``reason`` come from the cluster's error body. ``option`` names the
    library parameter that would help (as :class:`EchoSpladeValueError.option` does; a command
    line adds its flag) and ``context`` the facts for that hint (``{"value": ...}``: the value to
    set it to). Picklable, so it crosses Ray process boundaries intact. Never carries credentials.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        error_type: Optional[str] = None,
        reason: Optional[str] = None,
        body: Any = None,
        option: Optional[str] = None,
        context: Optional[dict] = None,
    ) -> None:
        super().__init__(message, status, error_type, reason, body, option, context)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.body = body
        self.option = option
        self.context = dict(context or {})

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES

    @property
    def unreachable(self) -> bool:
        return self.status is None

    def __str__(self) -> str:
        return self.message


class AuthenticationError(ClusterError):
    """HTTP 401: the cluster did not accept the credentials (wrong user/password or API key, or none given)."""

    @property
    def retryable(self) -> bool:
        return False


class AuthorizationError(ClusterError):
    """HTTP 403: the credentials are valid but lack a privilege; :attr:`action` names the refused action
    (e.g. ``indices:data/write/bulk[s]``) when the cluster said which."""

    @property
    def retryable(self) -> bool:
        return False

    @property
    def action(self) -> Optional[str]:
        match = _ACTION.search(self.reason or "")
        return match.group(1) if match else None


class TLSError(ClusterError):
    """The TLS handshake failed: the server certificate did not verify against the CA (``--ca-certs``), or the
    server does not speak TLS. Not retryable: retrying cannot make a certificate valid."""

    @property
    def retryable(self) -> bool:
        return False


# Elasticsearch: "action [indices:data/write/bulk[s]] is unauthorized ..."; OpenSearch: "no permissions for
# [cluster:monitor/main] and User [...]"
_ACTION = re.compile(r"(?:action|no permissions for) \[((?:[^\[\]\s]|\[[^\]]*\])+)\]")
_TLS_MARKERS = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "WRONG_VERSION_NUMBER",
    "wrong version number",
    "SSLError",
    "SSL: ",
    "TLS/SSL",
)


def _error_parts(body: Any) -> tuple[Optional[str], Optional[str]]:
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            root = (err.get("root_cause") or [err])[0]
            return root.get("type") or err.get("type"), root.get("reason") or err.get("reason")
        if isinstance(err, str):
            return None, err
    if isinstance(body, str):
        return None, body[:500]
    return None, None


class Backend:
    """A cluster client of either engine behind one small, engine-neutral interface.

    All calls go through :meth:`request` (``perform_request`` of the wrapped
    client), so request bodies are the documented REST bodies, identical on
    both engines except where :attr:`engine` says otherwise.
    """

    def __init__(self, raw: Any, engine: str, info: Optional[Mapping[str, Any]] = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.raw = raw
        self.engine = engine
        self._info = dict(info) if info is not None else None

    # -- identity ---------------------------------------------------------
    @property
    def info(self) -> dict:
        if self._info is None:
            self._info = self.request("GET", "/")
        return self._info

    @property
    def version(self) -> tuple[int, ...]:
        number = self.info.get("version", {}).get("number", "0")
        parts = []
        for piece in number.split("-")[0].split("."):
            parts.append(int(piece) if piece.isdigit() else 0)
        return tuple(parts)

    @property
    def version_string(self) -> str:
        return f"{self.engine} {self.info.get('version', {}).get('number', '?')}"

    def __repr__(self) -> str:
        return f"Backend(engine={self.engine!r})"

    # -- the one primitive -------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Optional[Mapping[str, Any]] = None,
        ndjson: bool = False,
    ) -> Any:
        """Send one REST request; return the decoded JSON body.

        ``body`` is a dict (JSON) or, with ``ndjson=True``, a ``str``/``bytes``
        of newline-delimited JSON (``_bulk``, ``_msearch``). Raises
        :class:`ClusterError` for any error status or an unreachable cluster.
        """
        params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            if self.engine == "opensearch":
                # opensearch-py pops a `timeout` param as its own request timeout unless one is
                # passed explicitly; pass the client's so cluster-side `timeout` params reach the cluster.
                timeout = self.raw.transport.kwargs.get("timeout") or 10
                return self.raw.transport.perform_request(
                    method, path, params=params or None, body=body, timeout=timeout
                )
            headers = {"accept": "application/json"}
            if body is not None:
                headers["content-type"] = "application/x-ndjson" if ndjson else "application/json"
                if ndjson and isinstance(body, str):
                    body = body.encode("utf-8")
            resp = self.raw.perform_request(method, path, params=params or None, headers=headers, body=body)
            return resp.body
        except ClusterError:
            raise
        except Exception as exc:  # translated into one picklable error type
            raise _translate(exc, method, path) from None

    # -- conveniences (thin, documented REST calls) ------------------------
    def health(self, index: Optional[str] = None, **params: Any) -> dict:
        path = "/_cluster/health" + (f"/{index}" if index else "")
        return self.request("GET", path, params=params)

    def exists(self, name: str) -> bool:
        """Whether an index or alias called ``name`` exists."""
        try:
            # Both clients answer a 404 to HEAD with False (not an error).
            return bool(self.request("HEAD", f"/{name}"))
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise

    def search(self, index: str, body: Mapping[str, Any], **params: Any) -> dict:
        return self.request("POST", f"/{index}/_search", body=dict(body), params=params)

    def msearch(self, index: str, bodies: Sequence[Mapping[str, Any]], **params: Any) -> list[dict]:
        """Several searches of ``index`` in one ``_msearch`` request: their responses, in order.

        Raises:
            ClusterError: a search failed (its error; ``_msearch`` itself answers 200), or was answered by only
                some of the index's shards (:func:`check_all_shards`).
        """
        lines = []
        for body in bodies:
            lines.append(json.dumps({"index": index}))
            lines.append(json.dumps(dict(body)))
        resp = self.request("POST", "/_msearch", body="\n".join(lines) + "\n", params=params, ndjson=True)
        out = []
        for item in resp["responses"]:
            if "error" in item:
                err = item["error"]
                reason = err.get("reason") if isinstance(err, Mapping) else err
                raise ClusterError(f"POST /_msearch: {reason}", status=item.get("status"), body=err)
            check_all_shards(item, f"search on {index}")
            out.append(item)
        return out

    def mget(self, index: str, ids: Sequence[str], **params: Any) -> dict[str, dict]:
        """The documents of ``index`` with these ids that exist, ``{_id: doc}`` (one ``_mget``)."""
        if not ids:
            return {}
        resp = self.request("POST", f"/{index}/_mget", body={"ids": list(ids)}, params=params)
        return {d["_id"]: d for d in resp.get("docs", []) if d.get("found")}

    def count(self, index: str, query: Optional[Mapping[str, Any]] = None) -> int:
        body = {"query": dict(query)} if query else None
        return int(self.request("POST", f"/{index}/_count", body=body)["count"])

    def refresh(self, index: str) -> dict:
        return self.request("POST", f"/{index}/_refresh")

    def bulk(self, lines: Iterable[str], **params: Any) -> dict:
        """``lines``: NDJSON lines (action and source lines, no trailing newline each)."""
        payload = "\n".join(lines) + "\n"
        return self.request("POST", "/_bulk", body=payload, params=params, ndjson=True)

    def get_settings(self, index: str, flat: bool = True) -> dict:
        return self.request("GET", f"/{index}/_settings", params={"flat_settings": flat})

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> dict:
        return self.request("PUT", f"/{index}/_settings", body={"index": dict(settings)})

    def get_mapping(self, index: str) -> dict:
        return self.request("GET", f"/{index}/_mapping")

    def get_aliases(self, name: str) -> dict:
        """``{physical_index: {"aliases": {...}}}`` for an alias; ``{}`` when it does not exist."""
        try:
            return self.request("GET", f"/_alias/{name}")
        except ClusterError as exc:
            if exc.status == 404:
                return {}
            raise

    def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> dict:
        return self.request("POST", "/_aliases", body={"actions": [dict(a) for a in actions]})

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _translate(exc: Exception, method: str, path: str) -> ClusterError:
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        meta = getattr(exc, "meta", None)
        status = getattr(meta, "status", None) if meta is not None else None
    if not isinstance(status, int):
        status = None
    body = getattr(exc, "info", None)
    if body is None:
        body = getattr(exc, "body", None)
    error_type, reason = _error_parts(body)
    cls = ClusterError
    if status is None:
        tls = _tls_failure(exc)
        if tls is not None:
            cls, reason = TLSError, tls
            msg = f"{method} {path}: TLS failed: {tls}"
        else:
            msg = f"{method} {path}: cluster unreachable ({type(exc).__name__}: {_first_line(exc)})"
    else:
        detail = f"{error_type}: {reason}" if error_type else (reason or _first_line(exc))
        if status == 401:
            cls = AuthenticationError
            msg = f"{method} {path}: authentication failed (HTTP 401): {reason or detail}"
        elif status == 403:
            cls = AuthorizationError
            msg = f"{method} {path}: permission denied (HTTP 403): {reason or detail}"
        else:
            msg = f"{method} {path}: HTTP {status}: {detail}"
    return cls(msg, status=status, error_type=error_type, reason=reason, body=_plain(body))


def _tls_failure(exc: BaseException) -> Optional[str]:
    """A one-line description when ``exc`` (or an exception it wraps) is a TLS handshake failure, else None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    texts = []
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        texts.append(f"{type(current).__name__}: {current}")
        for attr in ("__cause__", "__context__", "errors", "reason", "info"):
            nested = getattr(current, attr, None)
            for item in nested if isinstance(nested, (list, tuple)) else [nested]:
                if isinstance(item, BaseException):
                    todo.append(item)
    text = " | ".join(texts)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        match = re.search(r"certificate verify failed: ([^(\])'\"]+)", text)
        return "certificate verify failed" + (f": {match.group(1).strip()}" if match else "")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "the server does not speak TLS (https:// URL on a plain-http port?)"
    if any(marker in text for marker in _TLS_MARKERS):
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _plain(body: Any) -> Any:
    """Reduce a body to plain JSON types so the error stays picklable."""
    try:
        return json.loads(json.dumps(body, default=str))
    except (TypeError, ValueError):
        return str(body)


def _auth_kwargs(config: ConnectionConfig, engine: str) -> dict:
    kwargs: dict = {}
    if config.api_key:
        if engine == "opensearch":
            kwargs["headers"] = {"Authorization": f"ApiKey {config.api_key}"}
        else:
            kwargs["api_key"] = config.api_key
    elif config.user is not None:
        pair = (config.user, config.password or "")
        kwargs["http_auth" if engine == "opensearch" else "basic_auth"] = pair
    if any(u.startswith("https") for u in config.urls):
        kwargs["verify_certs"] = config.verify_certs
        if config.ca_certs:
            kwargs["ca_certs"] = config.ca_certs
        if not config.verify_certs:
            # one warning of ours per process (see _warn_insecure), not one per connection or request
            kwargs["ssl_show_warn"] = False
    return kwargs


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(kind: str, key: str, message: str, *args: Any, options: tuple[str, ...] = ()) -> None:
    """Log ``message`` once per ``(kind, key)``; ``options``: the parameters it names (a CLI adds their flags)."""
    with _warned_lock:
        if (kind, key) in _warned:
            return
        _warned.add((kind, key))
    logger.warning(message, *args, extra={"hint_options": options} if options else None)


def _warn_insecure(config: ConnectionConfig) -> None:
    """Log once per process what is insecure about ``config``; silence urllib3's per-request warning."""
    https = [u for u in config.urls if u.lower().startswith("https")]
    plain = [u for u in config.urls if not u.lower().startswith("https")]
    if https and not config.verify_certs:
        try:
            from urllib3.exceptions import InsecureRequestWarning

            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        except ImportError:  # pragma: no cover - both clients depend on urllib3
            pass
        _warn_once(
            "no-verify",
            ",".join(https),
            "TLS certificate verification is OFF for %s (verify_certs=False): the connection is encrypted "
            "but the server is not authenticated; give the cluster's CA certificate (ca_certs) instead "
            "outside of tests",
            ", ".join(config.describe_urls(https)),
            options=("verify_certs", "ca_certs"),
        )
    if plain and (config.user is not None or config.api_key):
        _warn_once(
            "clear-text",
            ",".join(plain),
            "credentials are sent in clear text to %s (plain http://): use https://",
            ", ".join(config.describe_urls(plain)),
        )


def _retry_kwargs(config: ConnectionConfig) -> dict[str, Any]:
    """The retry policy of both clients: a node that refuses the connection is skipped for another URL (each
    tried once); statuses (429/503 ...) and timeouts are not retried here: the callers decide (BulkWriter's backoff)."""
    return {"max_retries": len(config.urls) - 1, "retry_on_status": (), "retry_on_timeout": False}


def _opensearch_client(config: ConnectionConfig):
    from opensearchpy import OpenSearch

    return OpenSearch(
        hosts=list(config.urls),
        timeout=config.timeout,
        **_retry_kwargs(config),
        **_auth_kwargs(config, "opensearch"),
    )


def _elasticsearch_client(config: ConnectionConfig):
    try:
        from elasticsearch import Elasticsearch
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ImportError("Elasticsearch support needs `pip install elasticsearch`") from exc
    return Elasticsearch(
        hosts=list(config.urls),
        request_timeout=config.timeout,
        **_retry_kwargs(config),
        **_auth_kwargs(config, "elasticsearch"),
    )


def connect(config: Optional[ConnectionConfig] = None) -> Backend:
    """Open a :class:`Backend` for ``config``; detect the engine unless it is given.

    Detection reads ``version.distribution`` from the root endpoint (OpenSearch
    sets it to ``"opensearch"``; Elasticsearch does not). The probe uses the
    opensearch-py client, which performs no product check, so it can read
    either engine's root endpoint.
    """
    config = (config or ConnectionConfig()).with_env_secrets()
    _warn_insecure(config)
    probe = Backend(_opensearch_client(config), "opensearch")
    engine = config.engine
    info = None
    if engine in (None, "opensearch"):
        try:
            info = probe.request("GET", "/")
        except ClusterError as exc:
            probe.close()
            what = "cannot reach the cluster" if type(exc) is ClusterError else "cluster"
            raise type(exc)(
                f"{what} at {config.describe()}: {exc}",
                status=exc.status,
                error_type=exc.error_type,
                reason=exc.reason,
            ) from None
        if engine is None:
            distribution = info.get("version", {}).get("distribution", "elasticsearch")
            engine = "opensearch" if distribution == "opensearch" else "elasticsearch"
    if engine == "opensearch":
        logger.debug("connected to OpenSearch at %s", config.describe())
        return Backend(probe.raw, "opensearch", info)
    probe.close()
    logger.debug("connected to Elasticsearch at %s", config.describe())
    return Backend(_elasticsearch_client(config), "elasticsearch", None)


def wrap_client(client: Any) -> Backend:
    """Wrap a caller's own ``opensearchpy.OpenSearch`` or ``elasticsearch.Elasticsearch``."""
    if isinstance(client, Backend):
        return client
    module = type(client).__module__.split(".")[0]
    if module == "opensearchpy":
        return Backend(client, "opensearch")
    if module == "elasticsearch":
        return Backend(client, "elasticsearch")
    raise TypeError(
        "expected an opensearchpy.OpenSearch or elasticsearch.Elasticsearch client "
        f"(or an echo_splade Backend), got {type(client).__module__}.{type(client).__name__}"
    )


def check_all_shards(response: Mapping[str, Any], what: str) -> None:
    """Raise ``ClusterError`` when a search was answered by only some of the index's shards.

    A shard with no live copy (its node down, no replica) makes the engine answer with the hits of the
    other shards and a count in ``_shards`` only: returned as is, such hits look complete and are not.
    """
    shards = response.get("_shards") or {}
    total = int(shards.get("total") or 0)
    answered = int(shards.get("successful") or 0) + int(shards.get("skipped") or 0)
    if answered >= total:
        return
    kinds = sorted(
        {
            str((failure.get("reason") or {}).get("type", "error"))
            for failure in shards.get("failures") or []
            if isinstance(failure, Mapping)
        }
    )
    detail = f" ({', '.join(kinds)})" if kinds else ""
    raise ClusterError(
        f"{what}: only {answered} of {total} shards answered{detail}, so the hits would be partial; "
        f"a shard has no live copy (a node is down and the index has no replica there): retry when the "
        f"cluster health is yellow or green",
        status=503,
        error_type="partial_search_results",
        reason=f"{total - answered} of {total} shards failed",
        body=dict(shards),
    )
