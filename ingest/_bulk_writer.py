from __future__ import annotations

import collections
import functools
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, Optional

from echo_splade.client import AuthenticationError, AuthorizationError, Backend, ClusterError

from ._backoff import Backoff
from ._bulk_index_error import BulkIndexError

logger = logging.getLogger(__name__)

__all__ = ["BulkWriter"]

OP_TYPES = ("index", "create", "update", "delete")
# Action keys that go into the bulk metadata line (``_``-prefixed as in elasticsearch-py helpers).
_META_KEYS = {
    "_index": "_index",
    "_id": "_id",
    "_routing": "routing",
    "routing": "routing",
    "pipeline": "pipeline",
    "_if_seq_no": "if_seq_no",
    "_if_primary_term": "if_primary_term",
    "require_alias": "require_alias",
}
_FILTER_PATH = "errors,items.*._id,items.*.status,items.*.error,items.*.result"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class BulkWriter:
    """Bulk-index actions with bounded requests and retries, in the style of elasticsearch-py's ``helpers``.

    :meth:`streaming_bulk` takes an iterable of actions and yields one
    ``(ok, item)`` per action, ``item`` being the cluster's bulk response item
    (``{"index": {"_id": ..., "status": ..., "error": ...}}``). An action is a
    dict as for the official helpers: ``_op_type`` (``index`` by default, so a
    re-run overwrites by ``_id`` instead of duplicating), ``_index``, ``_id``,
    and the document either as ``_source`` (a dict, or a ``str`` that is
    already serialised JSON) or as the remaining keys. Actions are never
    modified.

    Requests close on whichever comes first of ``max_chunk_docs`` documents and
    ``max_chunk_bytes`` bytes (a single larger document goes alone). Retries
    with exponential backoff and jitter (``initial_backoff * 2**n`` seconds,
    capped at ``max_backoff``, times a random factor in [0.5, 1]) happen for
    the whole request when the cluster answers 429/502/503/504 or cannot be
    reached, and for single documents whose item status is in
    ``retry_on_status``; at most ``max_retries`` times per request (documents still refused after
    that raise :class:`ClusterError`, e.g. naming an index block). Other
    per-document failures (e.g. ``mapper_parsing_exception``) are yielded with
    ``ok=False`` and the cluster's reason, or collected into a
    :class:`BulkIndexError` when ``raise_on_error`` is set. When the cluster
    stays unreachable or overloaded after the retries, :class:`ClusterError`
    is raised, saying how many attempts were made.

    Args:
        backend: the cluster (``echo_splade.client.Backend``).
        index: default ``_index`` for actions without one.
        sleep: the sleep function (tests pass a fake one).
    """

    def __init__(
        self,
        backend: Backend,
        index: Optional[str] = None,
        *,
        max_chunk_docs: int = 500,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        max_retries: int = 8,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        retry_on_status: Collection[int] = (429, 502, 503, 504),
        raise_on_error: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        seed: Optional[int] = None,
    ) -> None:
        if max_chunk_docs < 1:
            raise ValueError(f"max_chunk_docs must be >= 1, got {max_chunk_docs}")
        if max_chunk_bytes < 1:
            raise ValueError(f"max_chunk_bytes must be >= 1, got {max_chunk_bytes}")
        self.backend = backend
        self.index = index
        self.max_chunk_docs = max_chunk_docs
        self.max_chunk_bytes = max_chunk_bytes
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.retry_on_status = frozenset(retry_on_status)
        self.raise_on_error = raise_on_error
        self._backoff = Backoff(max_retries, initial_backoff, max_backoff, sleep=sleep, seed=seed)
        #: ``requests`` sent, ``request_retries`` (whole request re-sent), ``doc_retries`` (documents re-sent).
        self.stats: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return (
            f"BulkWriter(index={self.index!r}, max_chunk_docs={self.max_chunk_docs}, "
            f"max_chunk_bytes={self.max_chunk_bytes}, max_retries={self.max_retries})"
        )

    # -- serialisation ---------------------------------------------------------
    def _lines(self, action: Mapping[str, Any]) -> tuple[str, Optional[str]]:
        if not isinstance(action, Mapping):
            raise TypeError(f"a bulk action must be a mapping, got {type(action).__name__}")
        op = action.get("_op_type", "index")
        if op not in OP_TYPES:
            raise ValueError(f"_op_type must be one of {OP_TYPES}, got {op!r}")
        meta: dict[str, Any] = {}
        for key, name in _META_KEYS.items():
            if key in action:
                meta[name] = action[key]
        if "_index" not in meta:
            if self.index is None:
                raise ValueError("an action has no _index and the BulkWriter has no default index")
            meta["_index"] = self.index
        if op == "delete":
            return _dumps({op: meta}), None
        if "_source" in action:
            source = action["_source"]
        else:
            source = {k: v for k, v in action.items() if k != "_op_type" and k not in _META_KEYS}
        if op == "update" and isinstance(source, Mapping) and not ({"doc", "script"} & set(source)):
            source = {"doc": source}
        return _dumps({op: meta}), source if isinstance(source, str) else _dumps(source)

    def _chunks(self, actions: Iterable[Mapping[str, Any]]) -> Iterator[list[tuple[str, Optional[str]]]]:
        chunk: list[tuple[str, Optional[str]]] = []
        size = 0
        for action in actions:
            lines = self._lines(action)
            cost = sum(len(x.encode("utf-8")) + 1 for x in lines if x is not None)
            if chunk and (len(chunk) >= self.max_chunk_docs or size + cost > self.max_chunk_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(lines)
            size += cost
        if chunk:
            yield chunk

    # -- sending -----------------------------------------------------------------
    def _send(self, chunk: list[tuple[str, Optional[str]]]) -> dict:
        lines: list[str] = []
        for meta, source in chunk:
            lines.append(meta)
            if source is not None:
                lines.append(source)
        self.stats["requests"] += 1
        return self.backend.bulk(lines, filter_path=_FILTER_PATH)

    def _process_chunk(self, chunk: list[tuple[str, Optional[str]]]) -> Iterator[tuple[bool, dict]]:
        pending = chunk
        attempt = 0
        while pending:
            retries_before = self._backoff.retries
            try:
                response = self._backoff.call(functools.partial(self._send, pending), what="bulk request")
            finally:
                self.stats["request_retries"] += self._backoff.retries - retries_before
            items = response.get("items") or []
            if len(items) != len(pending):
                raise ClusterError(
                    f"bulk response has {len(items)} items for {len(pending)} actions", status=200, body=response
                )
            retry: list[tuple[str, Optional[str]]] = []
            for entry, item in zip(pending, items):
                info = next(iter(item.values()))
                status = int(info.get("status", 500))
                if status in (401, 403):
                    # a credentials problem, not a bad document: stop the job (nothing dead-lettered;
                    # --resume indexes what is missing once the role is fixed)
                    raise _item_error(status, info.get("error"))
                if status in self.retry_on_status:
                    if attempt < self.max_retries:
                        retry.append(entry)
                        continue
                    # still throttled or blocked after every retry: the cluster's state, not the document's
                    # fault, so stop (the job reports how much it indexed; --resume finishes) instead of
                    # yielding it as a failed document (which the ingest job would dead-letter)
                    raise _refused_after_retries(status, info.get("error"), attempt)
                yield 200 <= status < 300, item
            if retry:
                logger.info(
                    "%d of %d documents throttled (HTTP %s); retry %d/%d",
                    len(retry),
                    len(pending),
                    "/".join(map(str, sorted(self.retry_on_status))),
                    attempt + 1,
                    self.max_retries,
                )
                self.stats["doc_retries"] += len(retry)
                self._backoff.wait(attempt)
                attempt += 1
            pending = retry

    def streaming_bulk(self, actions: Iterable[Mapping[str, Any]]) -> Iterator[tuple[bool, dict]]:
        """Send ``actions`` in bounded chunks; yield ``(ok, item)`` per action (order within a chunk may change
        when documents are retried)."""
        for chunk in self._chunks(actions):
            errors: list[dict] = []
            for ok, item in self._process_chunk(chunk):
                if not ok and self.raise_on_error:
                    errors.append(item)
                yield ok, item
            if errors:
                raise BulkIndexError(f"{len(errors)} document(s) failed to index", errors)

    def bulk(self, actions: Iterable[Mapping[str, Any]]) -> tuple[int, list[dict]]:
        """Send everything; return ``(number indexed, failed items)`` (raises as :meth:`streaming_bulk`)."""
        indexed = 0
        failed: list[dict] = []
        for ok, item in self.streaming_bulk(actions):
            if ok:
                indexed += 1
            else:
                failed.append(item)
        return indexed, failed


def _refused_after_retries(status: int, error: Any, retries: int) -> ClusterError:
    """The error for documents the cluster still answers 429/5xx for after ``retries`` retries."""
    error = error if isinstance(error, dict) else {"reason": str(error)}
    reason, kind = error.get("reason"), error.get("type")
    message = f"POST /_bulk: documents still refused after {retries} retries (HTTP {status}): {kind}: {reason}"
    if "read_only_allow_delete" in str(reason) or "read-only-allow-delete" in str(reason):
        message += (
            " -- the index is blocked (index.blocks.read_only_allow_delete) because a node's disk passed the "
            "flood-stage watermark: free disk space (or raise cluster.routing.allocation.disk.watermark."
            "flood_stage), then lift the block: PUT /<index>/_settings "
            '{"index.blocks.read_only_allow_delete": null}'
        )
    return ClusterError(message, status=status, error_type=kind, reason=reason)


def _item_error(status: int, error: Any) -> ClusterError:
    """The typed error for a bulk item the cluster refused with 401/403."""
    error = error if isinstance(error, dict) else {"reason": str(error)}
    reason, kind = error.get("reason"), error.get("type")
    if status == 401:
        return AuthenticationError(
            f"POST /_bulk: authentication failed (HTTP 401): {reason}", status=401, error_type=kind, reason=reason
        )
    return AuthorizationError(
        f"POST /_bulk: permission denied (HTTP 403): {reason}", status=403, error_type=kind, reason=reason
    )
