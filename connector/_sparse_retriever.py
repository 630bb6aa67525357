from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, Union

from echo_splade.client import check_all_shards, wrap_client
from echo_splade.mappings import feature_to_token, token_to_feature

from ._document_frequencies import DocumentFrequencies
from ._explanation import Explanation
from ._hit import Hit
from ._hybrid import Hybrid
from ._index_facts import IndexFacts
from ._inference_free_query_encoder import InferenceFreeQueryEncoder
from ._llm_query_encoder import LlmQueryEncoder
from ._query_encoder import MODES, Mode, Query, QueryEncoder
from ._query_rewriter import QueryRewriter
from ._query_text import clean_query_text
from ._query_vector_cache import QueryVectorCache
from ._sparse_query import (
    SPARSE_FIELD_TYPES,
    SparseFieldType,
    estimate_leaf_clauses,
    select_terms,
    sparse_clause,
    uses_term_clauses,
)
from ._token_label import PieceScheme, piece_scheme
from ._token_query_encoder import TokenQueryEncoder
from ._two_phase import TwoPhase, TwoPhaseLike

logger = logging.getLogger(__name__)

__all__ = ["SparseRetriever", "Mode"]

HybridLike = Union[None, bool, str, Hybrid, Mapping[str, Any]]
#: the query encoder of each mode
_QUERY_ENCODERS: dict[str, type[QueryEncoder]] = {
    "llm": LlmQueryEncoder,
    "inference-free": InferenceFreeQueryEncoder,
    "tokens": TokenQueryEncoder,
}


class SparseRetriever:
    """Learned sparse retrieval over an echo-splade index with the caller's own cluster client.

    Args:
        client: an ``opensearchpy.OpenSearch``, an ``elasticsearch.Elasticsearch``
            or an :class:`echo_splade.client.Backend`.
        index: the alias (or index) to search.
        encoder: for ``mode="llm"``: an ``EchoSpladeEncoder``, or a short name /
            path to load one from (lazily, on first use). ``None``: the model
            recorded in the index ``_meta``.
        mode: how a query becomes ``{token: weight}``:
            ``"llm"`` runs the encoder's ``encode_queries`` (echo query template);
            ``"inference-free"`` runs no model: the query's tokens (model's
            tokenizer) weighted by their IDF over the indexed sparse field
            (:class:`DocumentFrequencies`); ``"tokens"`` takes the caller's
            ``{token: weight}`` as the query.
        field: the sparse field (``rank_features``, or ``sparse_vector`` on
            Elasticsearch >= 8.11: queried with the ``sparse_vector`` query from
            8.15, with ``term`` clauses weighted by boosts before).
        query_top_k: keep this many highest-weighted query terms (``None``: all);
            never more than the cluster's clause limit allows.
        min_weight: drop query terms weighing less.
        hybrid: default for :meth:`search`/:meth:`build_query`/:meth:`rewrite`
            (``None``: sparse only; ``"rrf"``, ``"weighted"``, ``True`` or a
            :class:`Hybrid`); each call can override it (``hybrid=False``: off).
        tokenizer: for ``inference-free``: a HF tokenizer or a name for
            ``load_tokenizer``; default: the encoder's, else the index's model.
        adapter, device: passed to ``EchoSpladeEncoder.from_pretrained`` when
            the encoder is loaded here.
        encoder_options: further ``from_pretrained`` options then, e.g. ``INT8_QUERY_OPTIONS`` (int8 query
            encoding on a CPU, within 0.005 nDCG@10 of fp32 on dev) and ``compile=True`` (README "Measured").
        clause_limit: the cluster's boolean clause limit; ``None``: read it
            (``indices.query.bool.max_clause_count``, default 1024).
        explain_top_n: how many matching terms an explanation keeps.
        query_cache: the LRU cache of ``llm``-mode query vectors (default: a new
            ``QueryVectorCache(1024)``, keyed by ``model_rev`` and the exact text; pass
            ``QueryVectorCache(0)`` to encode every time, or one cache to share it between retrievers).
        field_type: ``"rank_features"`` or ``"sparse_vector"``; ``None``: read
            from the index mapping on first use.
        two_phase: two-phase search (:class:`TwoPhase`): phase 1 searches with the heaviest query terms,
            phase 2 rescores the top window with all of them, so every hit returned carries the full dot
            product. ``"search"`` (the default): in ``llm`` mode :meth:`search` uses ``TwoPhase()`` and
            :meth:`build_query` stays exhaustive (its body may go on to carry aggregations, sorting or paging,
            which a rescore changes or refuses); the other modes stay exhaustive. ``True`` or a
            :class:`TwoPhase` (its options as a dict): both methods use it, in every mode; ``None``/``False``:
            neither (exhaustive: every selected query term scores every document). Measured on SciFact
            (README, "Measured"): ``llm`` mode 0.61x exhaustive's p50 at no nDCG@10 loss of its own on dev;
            ``inference-free`` queries (a few IDF-weighted tokens) lost 0.028, hence exhaustive there.
    """

    def __init__(
        self,
        client: Any,
        index: str,
        encoder: Any = None,
        mode: Mode = "llm",
        field: str = "sparse",
        query_top_k: Optional[int] = 64,
        min_weight: float = 0.0,
        hybrid: HybridLike = None,
        tokenizer: Any = None,
        adapter: Optional[str] = None,
        device: Optional[str] = None,
        clause_limit: Optional[int] = None,
        explain_top_n: Optional[int] = 10,
        field_type: Optional[SparseFieldType] = None,
        query_cache: Optional[QueryVectorCache] = None,
        two_phase: Union[TwoPhaseLike, Literal["search"]] = "search",
        encoder_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(index, str) or not index.strip():
            raise ValueError(f"index must be a non-empty index or alias name, got {index!r}")
        if not isinstance(field, str) or not field or "." in field:
            raise ValueError(f"field must be a top-level field name without dots, got {field!r}")
        if query_top_k is not None and (not isinstance(query_top_k, int) or query_top_k < 1):
            raise ValueError(f"query_top_k must be a positive integer or None (all terms), got {query_top_k!r}")
        if not isinstance(min_weight, (int, float)) or min_weight < 0:
            raise ValueError(f"min_weight must be a number >= 0, got {min_weight!r}")
        if clause_limit is not None and clause_limit < 1:
            raise ValueError(f"clause_limit must be >= 1, got {clause_limit}")
        if field_type is not None and field_type not in SPARSE_FIELD_TYPES:
            raise ValueError(f"field_type must be one of {SPARSE_FIELD_TYPES} or None, got {field_type!r}")
        if explain_top_n is not None and explain_top_n < 0:
            raise ValueError(f"explain_top_n must be >= 0 or None, got {explain_top_n}")
        self.backend = wrap_client(client)
        self.index = index
        self.mode: Mode = mode
        self.field = field
        self.query_top_k = query_top_k
        self.min_weight = float(min_weight)
        self.hybrid = Hybrid.coerce(hybrid)
        #: the plan of :meth:`search` (``None``: exhaustive) and of :meth:`build_query`
        if two_phase == "search":
            self.two_phase: Optional[TwoPhase] = TwoPhase() if mode == "llm" else None
        else:
            self.two_phase = TwoPhase.coerce(two_phase)
        self.build_two_phase: Optional[TwoPhase] = None if two_phase == "search" else self.two_phase
        self.adapter = adapter
        self.device = device
        self.explain_top_n = explain_top_n
        #: what the index tells us (clause limit, field type, ``_meta``, document frequencies), read once each
        self.facts = IndexFacts(self.backend, index, field, clause_limit=clause_limit, field_type=field_type)
        options: dict[str, Any] = dict(
            encoder=encoder, tokenizer=tokenizer, adapter=adapter, device=device, encoder_options=encoder_options
        )
        if mode == "llm":
            options["query_cache"] = query_cache
        #: how a query becomes feature weights in this mode
        self.query_encoder: QueryEncoder = _QUERY_ENCODERS[mode](self.facts, **options)
        #: encoded ``llm``-mode queries (LRU, keyed by model_rev and text): a repeated query skips the model
        self.query_cache: QueryVectorCache = (
            self.query_encoder.query_cache
            if isinstance(self.query_encoder, LlmQueryEncoder)
            else query_cache
            if query_cache is not None
            else QueryVectorCache()
        )
        self._piece_scheme: Optional[PieceScheme] = None

    def __repr__(self) -> str:
        return f"SparseRetriever(index={self.index!r}, mode={self.mode!r}, field={self.field!r}, query_top_k={self.query_top_k})"

    # -- what the index tells us, the model ------------------------------------
    @property
    def clause_limit(self) -> int:
        return self.facts.clause_limit

    @property
    def field_type(self) -> SparseFieldType:
        return self.facts.field_type

    @property
    def index_meta(self) -> dict:
        """The index ``_meta`` written at provisioning (model, model_rev, feature scheme, templates)."""
        return self.facts.meta

    @property
    def encoder(self) -> Any:
        """The query encoder model (``llm`` mode), loaded on first use."""
        return self.query_encoder.encoder

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of ``inference-free`` mode (and of readable explanations)."""
        return self.query_encoder.tokenizer

    @property
    def piece_scheme(self) -> PieceScheme:
        """How the query vocabulary marks word pieces (for readable explanations); from the tokenizer, once."""
        if self._piece_scheme is None:
            self._piece_scheme = piece_scheme(self.tokenizer)
        return self._piece_scheme

    @property
    def document_frequencies(self) -> DocumentFrequencies:
        """Document frequencies over the sparse field (``inference-free`` mode)."""
        return self.facts.document_frequencies

    def refresh_document_frequencies(self) -> int:
        """Recompute document frequencies for the tokenizer's whole vocabulary and store them with the index.

        Returns how many vocabulary features occur in at least one document.
        """
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        features = {token_to_feature(t) for t in vocab if t}
        return self.document_frequencies.refresh(sorted(features))

    def _clause(self, features: Mapping[str, float], boost: Optional[float] = None, name: Optional[str] = None) -> dict:
        """The sparse clause of ``features`` for this field's type and the cluster's version."""
        return sparse_clause(
            features,
            self.field,
            self.field_type,
            boost=boost,
            name=name,
            terms=uses_term_clauses(self.backend, self.field_type),
        )

    # -- query encoding ------------------------------------------------------
    def encode_query(self, query: Query) -> dict[str, float]:
        """``{token_string: weight}`` the query is searched with (after pruning), largest first."""
        prepared = self.query_encoder.prepare(query)
        return {feature_to_token(f): w for f, w in self._query_features(prepared, self.clause_limit).items()}

    def _query_features(self, prepared: Query, max_terms: int) -> dict[str, float]:
        """The selected ``{feature: weight}`` of a prepared query (at most ``max_terms``)."""
        features = self.query_encoder.features(prepared, max_terms, self.query_top_k, self.min_weight)
        return select_terms(features, self.query_top_k, self.min_weight, max(1, max_terms))

    @staticmethod
    def clean_text(query: Any) -> str:
        """Validate query text: a ``str`` with something to search for (:func:`clean_query_text`).

        Control characters become spaces and lone surrogates ``?`` (neither can
        travel as UTF-8 JSON); tabs, newlines, emoji and any script are kept.
        Raises ``ValueError`` for non-strings and empty/whitespace-only text.
        """
        return clean_query_text(query)

    # -- request bodies ---------------------------------------------------------
    def _hybrid_for(self, hybrid: HybridLike) -> Optional[Hybrid]:
        resolved = self.hybrid if hybrid is None else Hybrid.coerce(hybrid)
        if resolved is not None and self.mode == "tokens":
            raise ValueError("hybrid search needs query text; mode='tokens' has none")
        return resolved

    def build_query(
        self,
        query: Query,
        filters: Any = None,
        hybrid: HybridLike = None,
        k: Optional[int] = None,
        two_phase: TwoPhaseLike = None,
    ) -> dict:
        """A complete search request body for ``query``.

        ``filters``: a query clause or a list of them, placed untouched in
        ``bool.filter``. With ``hybrid`` the body scores the raw weighted sum of
        BM25 and sparse (one request cannot normalise or fuse ranks; use
        :meth:`search` for that). ``k`` sets ``size``. ``two_phase`` (default: the
        retriever's, which is off unless the retriever was given one) adds a ``rescore`` section sized for ``k`` (10 when ``k`` is not
        given); with ``hybrid`` it is not used (the rescore would replace the fused score).
        """
        hyb = self._hybrid_for(hybrid)
        plan = self.build_two_phase if two_phase is None else TwoPhase.coerce(two_phase)
        features, body = self._body(self.query_encoder.prepare(query), filters, hyb)
        if k is not None:
            body["size"] = self._check_k(k)
        if plan is not None and hyb is None:
            body = self._with_two_phase(body, features, filters, plan, body.get("size", 10))
        return body

    def _two_phase_for(self, two_phase: TwoPhaseLike) -> Optional[TwoPhase]:
        """The search's two-phase plan: the call's own (``False``: off), else the retriever's."""
        return self.two_phase if two_phase is None else TwoPhase.coerce(two_phase)

    def _with_two_phase(
        self, body: dict, features: Mapping[str, float], filters: Any, plan: TwoPhase, size: int
    ) -> dict:
        """``body`` searching with the phase-1 terms and rescoring its top window with all of ``features``."""
        first = plan.phase1(features)
        if len(first) == len(features):  # phase 1 is already exhaustive
            return body
        out = dict(body)
        out["query"] = self._with_filters(self._clause(first), copy.deepcopy(filters))
        out["rescore"] = plan.rescore(self._clause(features), plan.window(size))
        return out

    def _body(
        self, prepared: Query, filters: Any, hybrid: Optional[Hybrid], sparse_only: bool = False
    ) -> tuple[dict, dict]:
        """``(features, body)`` of a prepared query: the sparse clause (beside BM25 with ``hybrid``) and filters."""
        filters = copy.deepcopy(filters)
        reserved = estimate_leaf_clauses(filters)
        bm25 = None
        if hybrid is not None and not sparse_only:
            bm25 = hybrid.bm25_clause(self.query_encoder.text(prepared))
            reserved += estimate_leaf_clauses(bm25)
        budget = self.clause_limit - reserved
        if budget < 1:
            raise ValueError(
                f"the filters use about {reserved} of the cluster's {self.clause_limit} clauses; "
                "no room is left for the query"
            )
        features = self._query_features(prepared, budget)
        clause = self._clause(features)
        if bm25 is not None and hybrid is not None:
            clause = hybrid.combine_clauses(bm25, clause)
        return features, {"query": self._with_filters(clause, filters)}

    @staticmethod
    def _with_filters(clause: dict, filters: Any) -> dict:
        if filters is None or filters == [] or filters == {}:
            return clause
        if not isinstance(filters, (Mapping, list)):
            raise ValueError(
                f"filters must be a query clause (dict) or a list of clauses, got {type(filters).__name__}"
            )
        return {"bool": {"must": [clause], "filter": filters}}

    @staticmethod
    def _check_k(k: Any) -> int:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        return k

    # -- search ---------------------------------------------------------------
    def search(
        self,
        query: Query,
        k: int = 10,
        filters: Any = None,
        hybrid: HybridLike = None,
        explain: bool = False,
        two_phase: TwoPhaseLike = None,
    ) -> list[Hit]:
        """The top ``k`` hits for ``query``.

        ``hybrid`` fuses BM25 and sparse client-side (see :class:`Hybrid`): one
        ``_msearch`` for both candidate lists (ids and scores), one ``_mget`` for
        the sources of the ``k`` fused hits. ``explain=True`` attaches to each hit the matching
        expansion terms, computed from its stored sparse vector (no extra request).
        Hit totals are not counted (``track_total_hits: false``), which lets the
        cluster skip documents that cannot reach the top ``k``. Hits come with their whole ``_source``
        and the sparse field is dropped here: a ``_source`` filter would make the cluster parse and
        rebuild every hit's source (measured: +2-3 ms server time per search on SciFact, more than the
        transfer). ``two_phase`` (default: the retriever's, ``TwoPhase()`` unless it was given another;
        ``False``: off for this call) scores the sparse list in two phases (:class:`TwoPhase`): the hits'
        scores are still the full dot product.
        """
        k = self._check_k(k)
        hyb = self._hybrid_for(hybrid)
        plan = self._two_phase_for(two_phase)
        prepared = self.query_encoder.prepare(query)  # the text is cleaned once, for both lists
        features, body = self._body(prepared, filters, hyb, sparse_only=True)
        if hyb is None:
            resp = self._sparse_search(body, features, filters, plan, {"size": k, "_source": True})
            check_all_shards(resp, f"search on {self.index}")
            hits = [self._hit(h, float(h["_score"] or 0.0), features, explain, prepared) for h in resp["hits"]["hits"]]
            return hits
        # candidate lists carry ids and scores only; the k fused hits' sources come in one _mget
        size = max(k, hyb.candidates)
        bm25_body = {
            "query": self._with_filters(hyb.bm25_clause(self.query_encoder.text(prepared)), copy.deepcopy(filters)),
            "size": size,
            "_source": False,
            "track_total_hits": False,
        }
        request = {"size": size, "_source": False, "track_total_hits": False}
        phased = self._with_two_phase(body, features, filters, plan, size) if plan is not None else body
        lists = self.backend.msearch(self.index, [bm25_body, {**phased, **request}])
        lists[1] = self._unless_phase_1_fell_short(lists[1], phased, body, request)
        ranked = [[(h["_id"], float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]] for resp in lists]
        fused = hyb.fuse(ranked[0], ranked[1])[:k]
        docs = self._mget([doc_id for doc_id, _, _ in fused])
        out = []
        for doc_id, score, components in fused:
            hit = self._hit(docs.get(doc_id, {"_id": doc_id}), score, features, explain, prepared)
            hit.components = components
            out.append(hit)
        return out

    def _sparse_search(
        self, body: dict, features: Mapping[str, float], filters: Any, plan: Optional[TwoPhase], request: dict
    ) -> dict:
        """The sparse search of ``body`` (``request``: its size and source), in two phases when ``plan`` says so."""
        request = {**request, "track_total_hits": False}
        phased = self._with_two_phase(body, features, filters, plan, request["size"]) if plan is not None else body
        resp = self.backend.search(self.index, {**phased, **request})
        return self._unless_phase_1_fell_short(resp, phased, body, request)

    def _unless_phase_1_fell_short(self, resp: dict, phased: dict, body: dict, request: dict) -> dict:
        """``resp`` (the response to ``phased``), or, when ``phased`` is a two-phase body whose phase 1 found fewer
        than ``request["size"]`` documents (its heaviest terms match few; a small index), the response to the
        exhaustive ``body``: two-phase never returns fewer hits than exhaustive scoring would (documents that match
        only the lighter terms would be missing otherwise). Where phase 1 fills the window this costs nothing."""
        if phased is not body and TwoPhase.fell_short(resp, request["size"]):
            return self.backend.search(self.index, {**body, **request})
        return resp

    def _mget(self, ids: Sequence[str]) -> dict[str, dict]:
        # realtime=false reads what search saw (the last refresh) and skips the slow realtime path; whole
        # sources, as in search: _hit drops the sparse field (cheaper than a _source filter on the cluster)
        return self.backend.mget(self.index, ids, realtime=False)

    def _hit(
        self, raw: Mapping[str, Any], score: float, features: Mapping[str, float], explain: bool, query: Query = ""
    ) -> Hit:
        source = dict(raw.get("_source") or {})
        doc_sparse = source.pop(self.field, None)
        explanation = None
        if explain:
            if isinstance(doc_sparse, Mapping):
                # word pieces are shown with the word they came from, looked up in the query and the hit's text
                texts = (
                    query if isinstance(query, str) else "",
                    str(source.get("title") or ""),
                    str(source.get("text") or ""),
                )
                explanation = Explanation.from_weights(
                    features, doc_sparse, self.explain_top_n, texts=texts, scheme=self.piece_scheme
                )
            else:
                logger.warning("hit %s has no stored %s in _source; it cannot be explained", raw.get("_id"), self.field)
        return Hit(id=str(raw["_id"]), score=score, source=source, explanation=explanation, index=raw.get("_index"))

    # -- drop-in rewrite ----------------------------------------------------------
    def rewrite(
        self, body: Mapping[str, Any], field: Union[str, Sequence[str]] = "text", hybrid: HybridLike = None
    ) -> dict:
        """Rewrite an existing search body: lexical clauses on ``field`` become sparse (or hybrid) clauses.

        Everything else (filters, aggregations, sort, from/size, ``_source``,
        highlight, post_filter, the surrounding bool structure) is kept as it
        was; the input is not mutated. See :class:`QueryRewriter` for which
        clauses are replaced and which are left unchanged with a warning. With
        ``hybrid`` the original clause stays and the sparse clause is added
        beside it (raw weighted sum, see :meth:`Hybrid.combine_clauses`). The
        rewritten body scores exhaustively; :meth:`rewrite_two_phase` gives a
        two-phase one beside it.
        """
        return self._rewrite(body, field, hybrid, None, 0)[0]

    def rewrite_two_phase(
        self,
        body: Mapping[str, Any],
        field: Union[str, Sequence[str]] = "text",
        hybrid: HybridLike = None,
        two_phase: TwoPhaseLike = True,
        params: Optional[Mapping[str, str]] = None,
    ) -> tuple[dict, Optional[dict]]:
        """``(exhaustive, phased)``: :meth:`rewrite`'s body, and the same search in two phases (``None`` where
        it does not apply), with the query text encoded once.

        The phased body's query is the rewritten query with each sparse clause cut to its phase-1 terms
        (:meth:`TwoPhase.phase1`); its ``rescore`` scores the top ``from + size`` window (times the window
        factor) with the whole exhaustive query (``query_weight`` 0), so every hit returned carries the score
        the exhaustive body gives it, whatever else the query holds (filters, other clauses, hybrid BM25).
        It does not apply where the body ranks or counts by more than the score (:meth:`TwoPhase.refusal`:
        ``sort``, ``aggs``, ``collapse``, an own ``rescore``, ``min_score``, ...; ``params`` are the request's
        URL parameters), nor where phase 1 would keep every term. Phase 1 matches only documents holding a
        heavy term: ``hits.total`` counts those, and a search whose phase 1 returns fewer than ``size`` hits
        should be sent again exhaustively (as :meth:`search` does).
        """
        plan = TwoPhase.coerce(two_phase)
        refusal = None if plan is None else plan.refusal(body, params)
        page = None if plan is None or refusal is not None else plan.page(body, params)
        if plan is None or page is None:  # refusal() is None exactly when the page is valid
            if refusal is not None:
                logger.debug("rewrite: exhaustive, not two-phase: %s", refusal)
            return self._rewrite(body, field, hybrid, None, 0)
        start, size = page
        return self._rewrite(body, field, hybrid, plan, start + size)

    def _rewrite(
        self,
        body: Mapping[str, Any],
        field: Union[str, Sequence[str]],
        hybrid: HybridLike,
        plan: Optional[TwoPhase],
        hits_wanted: int,
    ) -> tuple[dict, Optional[dict]]:
        """``(rewritten body, its two-phase twin or None)``; ``hits_wanted``: from + size (with ``plan`` only)."""
        if self.mode == "tokens":
            raise ValueError(
                "rewrite encodes the body's query text; it needs mode 'llm' or 'inference-free', not 'tokens'"
            )
        hyb = self._hybrid_for(hybrid)
        phase1: dict[int, dict] = {}  # id(full clause placed in the body) -> its phase-1 clause

        def clause(features: Mapping[str, float], original: dict, boost: Optional[float], name: Optional[str]) -> dict:
            if hyb is None:
                return self._clause(features, boost=boost, name=name)
            return hyb.combine_clauses(original, self._clause(features, boost=boost))

        def make_clause(text: str, max_terms: int, original: dict, boost: Optional[float], name: Optional[str]) -> dict:
            features = self._query_features(self.query_encoder.prepare(text), max_terms)
            full = clause(features, original, boost, name)
            first = plan.phase1(features) if plan is not None else features
            if len(first) < len(features):
                phase1[id(full)] = clause(first, original, boost, name)
            return full

        out = QueryRewriter(field).rewrite(body, make_clause, self.clause_limit, keeps_original=hyb is not None)
        if plan is None or not phase1:
            return out, None
        phased = dict(out)
        phased["query"] = _swapped(out["query"], phase1)
        phased["rescore"] = plan.rescore(copy.deepcopy(out["query"]), plan.window(hits_wanted))
        return out, phased


def _swapped(node: Any, swaps: Mapping[int, dict]) -> Any:
    """A copy of ``node`` with each object whose ``id`` is in ``swaps`` replaced by its value."""
    if id(node) in swaps:
        return swaps[id(node)]
    if isinstance(node, dict):
        return {k: _swapped(v, swaps) for k, v in node.items()}
    if isinstance(node, list):
        return [_swapped(v, swaps) for v in node]
    return node
