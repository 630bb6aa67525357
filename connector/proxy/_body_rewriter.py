from __future__ import annotations

import dataclasses
import json
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote

from echo_splade.client import ClusterError
from echo_splade.connector import Hybrid, RewriteWarning, SparseRetriever
from echo_splade.mappings import read_index_meta

from ._alias_rule import AliasRule
from ._guarded_encoder import GuardedEncoder
from ._json_splice import JsonSplice, MalformedJson
from ._query_encoder import EncoderUnavailable, QueryEncoder, load_query_encoder
from ._rewrite_outcome import RewriteOutcome
from ._rewrite_target import RewriteTarget, TargetKind

logger = logging.getLogger(__name__)

__all__ = ["BodyRewriter"]

_ENDPOINTS: dict[str, TargetKind] = {"_search": "search", "_count": "count", "_msearch": "msearch"}


class BodyRewriter:
    """Rewrites search bodies on configured aliases with :class:`~echo_splade.connector.SparseRetriever`'s
    ``rewrite`` (the rules of ``QueryRewriter``); every byte it does not rewrite stays as sent.

    Synchronous (the proxy calls it in a worker thread): the query encoder, the cluster's clause
    limit, the sparse field's type and document frequencies are read through ``backend``, the proxy's
    own connection, once per alias and cached.

    Args:
        backend: an ``echo_splade.client.Backend`` on the upstream cluster, or a function that
            connects one (called on first need, so the proxy starts while the cluster is down).
        rules: one :class:`AliasRule` per alias.
        encoder_factory: model name -> :class:`QueryEncoder` for ``llm`` aliases, called once per
            model (default: the in-process ``EchoSpladeEncoder``; the seam for a remote service).
        device: the in-process encoder's device.
        encoder_options: further ``from_pretrained`` options of the in-process encoder (e.g. ``INT8_QUERY_OPTIONS``).
    """

    def __init__(
        self,
        backend: Any,
        rules: Sequence[AliasRule],
        encoder_factory: Optional[Callable[[str], QueryEncoder]] = None,
        device: Optional[str] = None,
        encoder_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._backend = backend
        self.rules: dict[str, AliasRule] = {}
        for rule in rules:
            if rule.name in self.rules:
                raise ValueError(f"alias {rule.name!r} is configured twice")
            self.rules[rule.name] = rule
        options = dict(encoder_options or {})
        self.encoder_factory = encoder_factory or (lambda name: load_query_encoder(name, device=device, **options))
        self._encoders: dict[str, GuardedEncoder] = {}
        self._retrievers: dict[str, SparseRetriever] = {}
        self._lock = threading.RLock()

    @property
    def backend(self) -> Any:
        """The proxy's own connection to the cluster (connected on first use)."""
        with self._lock:
            if callable(self._backend) and not hasattr(self._backend, "request"):
                self._backend = self._backend()
            return self._backend

    # -- which requests ----------------------------------------------------
    def target(self, method: str, path: str, query_string: bytes = b"") -> Optional[RewriteTarget]:
        """The rewrite target of a request (``query_string``: its URL parameters, raw), or ``None`` (the
        request passes through untouched)."""
        if method not in ("GET", "POST"):
            return None
        parts = path.strip("/").split("/")
        params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)) if query_string else {}
        if len(parts) == 1 and parts[0] == "_msearch":
            return RewriteTarget("msearch", None, params)
        if len(parts) == 2 and parts[1] in _ENDPOINTS:
            alias = unquote(parts[0])
            if alias in self.rules or (parts[1] == "_msearch"):
                return RewriteTarget(_ENDPOINTS[parts[1]], alias, params)
        return None

    # -- preparing ---------------------------------------------------------
    def prepare(self) -> None:
        """Load what each alias needs now (encoder or tokenizer, clause limit, field type, stored
        document frequencies) instead of on its first request. Raises what fails."""
        for name in self.rules:
            retriever = self.retriever(name)
            _ = retriever.clause_limit, retriever.field_type
            if retriever.mode == "inference-free":
                _ = retriever.tokenizer
                retriever.document_frequencies.get([])
            logger.info("alias %s ready (%s)", name, self.rules[name].mode)

    def retriever(self, alias: str) -> SparseRetriever:
        """The :class:`SparseRetriever` that rewrites bodies on ``alias`` (created once)."""
        found = self._retrievers.get(alias)
        if found is not None:
            return found
        backend = self.backend
        with self._lock:
            found = self._retrievers.get(alias)
            if found is not None:
                return found
            rule = self.rules[alias]
            encoder = self._encoder_for(rule) if rule.mode == "llm" else None
            retriever = SparseRetriever(
                backend,
                alias,
                encoder=encoder,
                mode=rule.mode,
                field=rule.sparse_field,
                query_top_k=rule.query_top_k,
                tokenizer=rule.model if rule.mode == "inference-free" else None,
            )
            self._retrievers[alias] = retriever
            return retriever

    def _encoder_for(self, rule: AliasRule) -> GuardedEncoder:
        name = rule.model
        if name is None:
            model = (read_index_meta(self._backend, rule.name) or {}).get("model")
            if not model:
                raise ValueError(f"index {rule.name!r} records no model in its _meta; give the alias a model")
            name = str(model)
        if name not in self._encoders:
            self._encoders[name] = GuardedEncoder(self.encoder_factory(name))
        return self._encoders[name]

    # -- rewriting ---------------------------------------------------------
    def rewrite(self, target: RewriteTarget, body: bytes) -> RewriteOutcome:
        """The body to send for ``target``. Raises :class:`EncoderUnavailable` when the encoder fails;
        anything else that goes wrong sends the body unchanged (the status says why).

        On aliases with a two-phase plan (``AliasRule.plan``) ``_search`` and ``_msearch`` bodies that rank by
        score alone are sent in two phases, with the exhaustive body beside them in the outcome
        (``RewriteOutcome.exhaustive``: the proxy sends it when phase 1 falls short); ``_count`` never is."""
        if not body.strip():
            return RewriteOutcome(body, "unchanged; no body")
        try:
            if target.kind == "msearch":
                return self._rewrite_msearch(target, body)
            one = self._rewrite_one(target.alias or "", body, target.params if target.kind == "search" else None)
        except (MalformedJson, UnicodeDecodeError) as exc:
            logger.info("%s body on %s passed through unchanged: %s", target.kind, target.alias, exc)
            return RewriteOutcome(body, "passthrough; malformed body")
        except EncoderUnavailable:
            raise
        except (ValueError, ClusterError) as exc:
            logger.warning("%s body on %s passed through unchanged: %s", target.kind, target.alias, exc)
            return RewriteOutcome(body, f"passthrough; {_header_safe(str(exc))}")
        if one.phased is None:
            return self._outcome(one.body, one.count)
        return RewriteOutcome(one.phased, "rewritten; two-phase", one.count, exhaustive=one.body, sizes=(one.size,))

    def _outcome(self, body: bytes, count: int) -> RewriteOutcome:
        return RewriteOutcome(body, "rewritten" if count else "unchanged; no text clause to rewrite", count)

    def _rewrite_one(self, alias: str, raw: bytes, params: Optional[Mapping[str, str]]) -> _OneBody:
        """One search body on ``alias``: rewritten, and in two phases where the alias's plan applies to it
        (``params``: the request's URL parameters; ``None``: never two-phase, as for ``_count``)."""
        rule = self.rules[alias]
        splice = JsonSplice(raw.decode("utf-8"))
        if not isinstance(splice.value, Mapping):
            raise MalformedJson("the body is not a JSON object")
        hybrid: Any = Hybrid(sparse_weight=rule.sparse_weight) if rule.hybrid else False
        plan = rule.plan if params is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RewriteWarning)  # QueryRewriter logs each one as well
            new, phased = self.retriever(alias).rewrite_two_phase(
                splice.value, field=rule.fields, hybrid=hybrid, two_phase=plan or False, params=params
            )
        if new == splice.value:
            return _OneBody(raw, 0)
        body = splice.apply(new).encode("utf-8")
        page = plan.page(splice.value, params) if plan is not None and phased is not None else None
        if phased is None or page is None:  # (a phased body has a valid page: TwoPhase.refusal checked it)
            return _OneBody(body, 1)
        return _OneBody(body, 1, splice.apply(phased).encode("utf-8"), page[1])

    def _rewrite_msearch(self, target: RewriteTarget, body: bytes) -> RewriteOutcome:
        lines = body.split(b"\n")
        end = len(lines) - 1 if lines[-1] == b"" else len(lines)
        if end % 2:
            raise MalformedJson("an _msearch body needs a header line and a body line per search")
        count = 0
        phased = list(lines)
        sizes: list[Optional[int]] = []
        for i in range(0, end, 2):
            try:
                header = json.loads(lines[i]) if lines[i].strip() else {}
            except ValueError as exc:
                raise MalformedJson(f"_msearch header line {i + 1}: {exc}") from None
            if not isinstance(header, Mapping):
                raise MalformedJson(f"_msearch header line {i + 1} is not a JSON object")
            index = header.get("index", target.alias)
            if isinstance(index, list) and len(index) == 1:
                index = index[0]
            size = None
            if isinstance(index, str) and index in self.rules and lines[i + 1].strip():
                one = self._rewrite_one(index, lines[i + 1], target.params)
                lines[i + 1] = phased[i + 1] = one.body
                if one.phased is not None:
                    phased[i + 1], size = one.phased, one.size
                count += one.count
            sizes.append(size)
        if not count:
            return RewriteOutcome(body, self._outcome(body, 0).status)
        exhaustive = b"\n".join(lines)
        if all(size is None for size in sizes):
            return self._outcome(exhaustive, count)
        return RewriteOutcome(
            b"\n".join(phased), "rewritten; two-phase", count, exhaustive=exhaustive, sizes=tuple(sizes), msearch=True
        )


@dataclasses.dataclass(frozen=True)
class _OneBody:
    """One rewritten search body: ``count`` rewritten bodies (0 or 1); ``phased``: the two-phase body, asking
    for ``size`` hits, or ``None``."""

    body: bytes
    count: int
    phased: Optional[bytes] = None
    size: int = 0


def _header_safe(text: str, limit: int = 200) -> str:
    """One line of printable ASCII for a response header."""
    clean = "".join(c if " " <= c < "\x7f" else "?" for c in " ".join(text.split()))
    return clean[:limit]
