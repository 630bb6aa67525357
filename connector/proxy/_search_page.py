from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from echo_splade.client import ClusterError
from echo_splade.connector import Hit, Hybrid, SparseRetriever, token_label

from ._alias_rule import PROXY_MODES, ProxyMode

logger = logging.getLogger(__name__)

__all__ = ["SearchPage"]

_WORD = re.compile(r"\w+", re.UNICODE)
#: query-vector terms shown above the columns
QUERY_TERMS_SHOWN = 24


class SearchPage:
    """One page showing what learned sparse retrieval does: BM25, sparse and hybrid hits side by side.

    ``GET /`` is a self-contained HTML page (inline CSS and script, nothing loaded from elsewhere);
    ``GET /api/search?q=TEXT&alias=NAME&k=N`` answers
    ``{"query", "alias", "query_vector": [term, ...], "columns": {"bm25": [hit, ...], "sparse": [...],
    "hybrid": [...]}}``: each hit has ``id``, ``title``, ``snippet``, ``score`` and, for sparse and hybrid,
    ``terms`` (the matched expansion terms: ``label``, ``query_weight``, ``doc_weight``, ``product``,
    ``expansion`` = not in the query text); ``GET /api/aliases`` lists the aliases.

    Args:
        backend: an ``echo_splade.client.Backend`` (or opensearch-py / elasticsearch-py client).
        aliases: the aliases to offer (the first is the default).
        mode: query encoding, as in ``SparseRetriever``.
        encoder: ``llm`` mode: an encoder object, or a name to load; ``None``: the index's model.
        tokenizer: ``inference-free`` mode: a tokenizer name; ``None``: the index's model.
        k: hits per column.
        encoder_options: ``llm`` mode: ``from_pretrained`` options when the encoder is loaded here (``SparseRetriever``).
    """

    def __init__(
        self,
        backend: Any,
        aliases: list[str],
        mode: ProxyMode = "llm",
        encoder: Any = None,
        tokenizer: Optional[str] = None,
        k: int = 10,
        field: str = "sparse",
        encoder_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not aliases or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise ValueError(f"give one or more alias names, got {aliases!r}")
        if mode not in PROXY_MODES:
            raise ValueError(f"mode must be one of {PROXY_MODES}, got {mode!r}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.backend = backend
        self.aliases = list(dict.fromkeys(aliases))
        self.mode: ProxyMode = mode
        self.k = k
        self.field = field
        self._encoder = encoder
        self._tokenizer = tokenizer
        self._encoder_options = dict(encoder_options or {})
        self._retrievers: dict[str, SparseRetriever] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/", self._page, methods=["GET"]),
                Route("/api/search", self._search, methods=["GET"]),
                Route("/api/aliases", self._aliases, methods=["GET"]),
            ]
        )

    @staticmethod
    def html() -> str:
        """The page (one file shipped with the package)."""
        return resources.files("echo_splade.connector.proxy").joinpath("search_page.html").read_text(encoding="utf-8")

    def retriever(self, alias: str) -> SparseRetriever:
        with self._lock:
            if alias not in self._retrievers:
                retriever = SparseRetriever(
                    self.backend,
                    alias,
                    encoder=self._encoder if self.mode == "llm" else None,
                    mode=self.mode,
                    field=self.field,
                    tokenizer=self._tokenizer if self.mode == "inference-free" else None,
                    explain_top_n=8,
                    encoder_options=self._encoder_options if self.mode == "llm" else None,
                )
                if self.mode == "llm" and self._encoder is None:
                    self._encoder = retriever.encoder  # loaded once, shared by every alias
                self._retrievers[alias] = retriever
            return self._retrievers[alias]

    # -- handlers ----------------------------------------------------------
    async def _page(self, request: Request) -> Response:
        return HTMLResponse(self.html(), headers={"cache-control": "no-store"})

    async def _aliases(self, request: Request) -> Response:
        return JSONResponse({"aliases": self.aliases, "mode": self.mode})

    async def _search(self, request: Request) -> Response:
        q = request.query_params.get("q", "")
        alias = request.query_params.get("alias") or self.aliases[0]
        if alias not in self.aliases:
            return JSONResponse({"error": f"unknown alias {alias!r}; this page serves {self.aliases}"}, status_code=400)
        try:
            k = int(request.query_params.get("k", self.k))
        except ValueError:
            return JSONResponse({"error": "k must be a positive integer"}, status_code=400)
        try:
            result = await run_in_threadpool(self.search, q, alias, max(1, min(k, 50)))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except ClusterError as exc:
            logger.warning("search on %s failed: %s", alias, exc)
            return JSONResponse({"error": f"the cluster refused the search: {exc}"}, status_code=502)
        return JSONResponse(result)

    # -- the three columns -------------------------------------------------
    def search(self, query: str, alias: str, k: int) -> dict:
        """The page's data for ``query`` on ``alias`` (what ``/api/search`` answers)."""
        text = SparseRetriever.clean_text(query)
        retriever = self.retriever(alias)
        words = [w.lower() for w in _WORD.findall(text)]
        scheme = retriever.piece_scheme
        vector = retriever.encode_query(text)
        terms = []
        for token, weight in list(vector.items())[:QUERY_TERMS_SHOWN]:
            label = token_label(token, (text,), scheme)
            terms.append({"token": token, "label": label, "weight": weight, "expansion": _expansion(label, words)})
        bm25_body = {
            "query": Hybrid().bm25_clause(text),
            "size": k,
            "_source": True,  # what SparseRetriever.search asks: a source filter costs the cluster more
            "track_total_hits": False,
        }
        bm25 = [
            _hit_json(h["_id"], float(h["_score"] or 0.0), h.get("_source") or {}, words)
            for h in retriever.backend.search(alias, bm25_body)["hits"]["hits"]
        ]
        sparse = [self._hit(h, words) for h in retriever.search(text, k=k, explain=True)]
        hybrid = [self._hit(h, words) for h in retriever.search(text, k=k, hybrid=True, explain=True)]
        return {
            "query": text,
            "alias": alias,
            "mode": self.mode,
            "query_vector": terms,
            "columns": {"bm25": bm25, "sparse": sparse, "hybrid": hybrid},
        }

    @staticmethod
    def _hit(hit: Hit, words: list[str]) -> dict:
        out = _hit_json(hit.id, hit.score, hit.source, words)
        if hit.components:
            out["components"] = hit.components
        if hit.explanation is not None:
            out["matched"] = hit.explanation.matched
            out["terms"] = [
                {
                    "label": t.label,
                    "token": t.token,
                    "query_weight": t.query_weight,
                    "doc_weight": t.doc_weight,
                    "product": t.product,
                    "expansion": _expansion(t.label, words),
                }
                for t in hit.explanation.terms
            ]
        return out


def _expansion(label: str, query_words: list[str]) -> bool:
    """Whether a term is an expansion: neither a word of the query nor a piece of one."""
    piece = label.split(" <- ", 1)[0].strip().lower()
    return not any(piece and piece in word for word in query_words)


def _hit_json(doc_id: str, score: float, source: dict, words: list[str]) -> dict:
    return {
        "id": doc_id,
        "score": score,
        "title": str(source.get("title") or doc_id),
        "snippet": _snippet(str(source.get("text") or ""), words),
    }


def _snippet(text: str, words: list[str], width: int = 220) -> str:
    """About ``width`` characters of ``text`` around the first query word it contains."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    lowered = text.lower()
    positions = [p for p in (lowered.find(w) for w in words if len(w) > 2) if p >= 0]
    start = max(0, min(positions) - width // 3) if positions else 0
    if start:
        start = text.find(" ", start) + 1 or start
    piece = text[start : start + width].rsplit(" ", 1)[0]
    return ("... " if start else "") + piece + " ..."
