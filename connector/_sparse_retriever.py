from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional, Union

from echo_splade.client import ClusterError, wrap_client
from echo_splade.mappings import feature_to_token, read_index_meta, token_to_feature

from ._document_frequencies import DocumentFrequencies
from ._explanation import Explanation
from ._hit import Hit
from ._hybrid import Hybrid
from ._query_rewriter import QueryRewriter
from ._query_vector_cache import QueryVectorCache
from ._sparse_query import (
    SPARSE_FIELD_TYPES,
    SparseFieldType,
    detect_field_type,
    estimate_leaf_clauses,
    read_clause_limit,
    select_terms,
    sparse_clause,
    uses_term_clauses,
)
from ._token_label import PieceScheme, piece_scheme

logger = logging.getLogger(__name__)

__all__ = ["SparseRetriever", "Mode"]

Mode = Literal["llm", "inference-free", "tokens"]
MODES = ("llm", "inference-free", "tokens")
HybridLike = Union[None, bool, str, Hybrid, Mapping[str, Any]]
Query = Union[str, Mapping[str, float]]

# C0/C1 control characters except tab, newline, carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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
        clause_limit: the cluster's boolean clause limit; ``None``: read it
            (``indices.query.bool.max_clause_count``, default 1024).
        explain_top_n: how many matching terms an explanation keeps.
        query_cache: the LRU cache of ``llm``-mode query vectors (default: a new
            ``QueryVectorCache(1024)``, keyed by ``model_rev`` and the exact text; pass
            ``QueryVectorCache(0)`` to encode every time, or one cache to share it between retrievers).
        field_type: ``"rank_features"`` or ``"sparse_vector"``; ``None``: read
            from the index mapping on first use.
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
        self.adapter = adapter
        self.device = device
        self.explain_top_n = explain_top_n
        self._encoder = encoder if not isinstance(encoder, str) else None
        self._encoder_name = encoder if isinstance(encoder, str) else None
        self._tokenizer = tokenizer if not isinstance(tokenizer, str) else None
        self._tokenizer_name = tokenizer if isinstance(tokenizer, str) else None
        self._piece_scheme: Optional[PieceScheme] = None
        self._clause_limit = clause_limit
        self._field_type: Optional[SparseFieldType] = field_type
        self._meta: Optional[dict] = None
        self._dfs: Optional[DocumentFrequencies] = None
        #: encoded ``llm``-mode queries (LRU, keyed by model_rev and text): a repeated query skips the model
        self.query_cache = query_cache if query_cache is not None else QueryVectorCache()

    def __repr__(self) -> str:
        return f"SparseRetriever(index={self.index!r}, mode={self.mode!r}, field={self.field!r}, query_top_k={self.query_top_k})"

    # -- lazily resolved collaborators --------------------------------------
    @property
    def clause_limit(self) -> int:
        if self._clause_limit is None:
            self._clause_limit = read_clause_limit(self.backend)
            logger.debug("clause limit of the cluster: %d", self._clause_limit)
        return self._clause_limit

    @property
    def field_type(self) -> SparseFieldType:
        if self._field_type is None:
            self._field_type = detect_field_type(self.backend, self.index, self.field)
        return self._field_type

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

    @property
    def index_meta(self) -> dict:
        """The index ``_meta`` written at provisioning (model, model_rev, feature scheme, templates)."""
        if self._meta is None:
            self._meta = dict(read_index_meta(self.backend, self.index) or {})
        return self._meta

    @property
    def encoder(self) -> Any:
        """The query encoder (``llm`` mode), loaded on first use."""
        if self._encoder is None:
            from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

            name = self._encoder_name or self._model_from_meta("encoder")
            logger.info("loading encoder %s for queries on %s", name, self.index)
            self._encoder = EchoSpladeEncoder.from_pretrained(name, adapter=self.adapter, device=self.device)
            self._check_model_rev()
        return self._encoder

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of ``inference-free`` mode."""
        if self._tokenizer is None:
            if (
                self._tokenizer_name is None
                and self._encoder is not None
                and getattr(self._encoder, "tokenizer", None) is not None
            ):
                self._tokenizer = self._encoder.tokenizer
            else:
                from echo_splade.encoder import load_tokenizer  # lazy: imports transformers

                name = self._tokenizer_name or self._encoder_name or self._model_from_meta("tokenizer")
                self._tokenizer = load_tokenizer(name)
        return self._tokenizer

    @property
    def piece_scheme(self) -> PieceScheme:
        """How the query vocabulary marks word pieces (for readable explanations); from the tokenizer, once."""
        if self._piece_scheme is None:
            self._piece_scheme = piece_scheme(self.tokenizer)
        return self._piece_scheme

    @property
    def document_frequencies(self) -> DocumentFrequencies:
        """Document frequencies over the sparse field (``inference-free`` mode)."""
        if self._dfs is None:
            self._dfs = DocumentFrequencies(self.backend, self.index, self.field, self.field_type)
        return self._dfs

    def refresh_document_frequencies(self) -> int:
        """Recompute document frequencies for the tokenizer's whole vocabulary and store them with the index.

        Returns how many vocabulary features occur in at least one document.
        """
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        features = {token_to_feature(t) for t in vocab if t}
        return self.document_frequencies.refresh(sorted(features))

    # -- query encoding ------------------------------------------------------
    def encode_query(self, query: Query) -> dict[str, float]:
        """``{token_string: weight}`` the query is searched with (after pruning), largest first."""
        return {feature_to_token(f): w for f, w in self._query_features(query, self.clause_limit).items()}

    def _query_features(self, query: Query, max_terms: int) -> dict[str, float]:
        if self.mode == "tokens":
            weights = self._check_tokens(query)
        else:
            text = self.clean_text(query)
            if self.mode == "llm":
                weights = self._llm_weights(text, max_terms)
            else:
                weights = None
        if weights is not None:
            features: dict[str, float] = {}
            for token, w in weights.items():
                key = token_to_feature(token)
                features[key] = max(features.get(key, 0.0), float(w))
        else:
            features = self._idf_weights(text)
        return select_terms(features, self.query_top_k, self.min_weight, max(1, max_terms))

    def _llm_weights(self, text: str, max_terms: int) -> dict[str, float]:
        # prune in the encoder: decoding tens of thousands of unused token strings costs more than the search
        top_k = max(1, max_terms) if self.query_top_k is None else min(self.query_top_k, max(1, max_terms))
        key = (self.encoder.model_rev, text, top_k, self.min_weight)  # the exact text: the cache never changes results
        cached = self.query_cache.get(key)
        if cached is not None:
            return cached
        vec = self.encoder.encode_queries([text], top_k=top_k, min_weight=self.min_weight or None)[0]
        weights = self.encoder.tokens(vec)
        self.query_cache.put(key, weights)
        return weights

    def _idf_weights(self, text: str) -> dict[str, float]:
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        features = list(dict.fromkeys(token_to_feature(t) for t in tokens if t))
        return self.document_frequencies.idf(features)

    @staticmethod
    def clean_text(query: Any) -> str:
        """Validate query text: a ``str`` with something to search for.

        Control characters become spaces and lone surrogates ``?`` (neither can
        travel as UTF-8 JSON); tabs, newlines, emoji and any script are kept.
        Raises ``ValueError`` for non-strings and empty/whitespace-only text.
        """
        if not isinstance(query, str):
            raise ValueError(
                f"the query must be a string of text in this mode, got {type(query).__name__} "
                "(pass {token: weight} dicts with mode='tokens')"
            )
        # lone surrogates cannot be sent as UTF-8; control characters become spaces
        text = _CONTROL.sub(" ", query.encode("utf-8", "replace").decode("utf-8"))
        if not text.strip():
            raise ValueError("the query is empty or whitespace/control characters only; give some text to search for")
        return text

    @staticmethod
    def _check_tokens(query: Any) -> Mapping[str, float]:
        if not isinstance(query, Mapping):
            raise ValueError(f"mode='tokens' takes a {{token: weight}} dict, got {type(query).__name__}")
        if not query:
            raise ValueError("the {token: weight} query is empty")
        for token in query:
            if not isinstance(token, str) or not token:
                raise ValueError(f"token keys must be non-empty strings, got {token!r}")
        return query

    def _model_from_meta(self, what: str) -> str:
        model = self.index_meta.get("model")
        if not model:
            raise ValueError(f"index {self.index!r} records no model in its _meta; pass the {what} explicitly")
        return str(model)

    def _check_model_rev(self) -> None:
        try:
            stored = self.index_meta.get("model_rev")
        except Exception as exc:  # the index may predate _meta; querying still works
            logger.debug("cannot read the _meta of %s: %s", self.index, exc)
            return
        rev = getattr(self._encoder, "model_rev", None)
        if stored and rev and stored != rev:
            logger.warning(
                "index %s was encoded with model_rev %s but the query encoder is %s; scores mix two models",
                self.index,
                stored,
                rev,
            )

    # -- request bodies ---------------------------------------------------------
    def _hybrid_for(self, hybrid: HybridLike) -> Optional[Hybrid]:
        resolved = self.hybrid if hybrid is None else Hybrid.coerce(hybrid)
        if resolved is not None and self.mode == "tokens":
            raise ValueError("hybrid search needs query text; mode='tokens' has none")
        return resolved

    def build_query(
        self, query: Query, filters: Any = None, hybrid: HybridLike = None, k: Optional[int] = None
    ) -> dict:
        """A complete search request body for ``query``.

        ``filters``: a query clause or a list of them, placed untouched in
        ``bool.filter``. With ``hybrid`` the body scores the raw weighted sum of
        BM25 and sparse (one request cannot normalise or fuse ranks; use
        :meth:`search` for that). ``k`` sets ``size``.
        """
        features, body = self._body(query, filters, self._hybrid_for(hybrid))
        if k is not None:
            body["size"] = self._check_k(k)
        return body

    def _body(
        self, query: Query, filters: Any, hybrid: Optional[Hybrid], sparse_only: bool = False
    ) -> tuple[dict, dict]:
        filters = copy.deepcopy(filters)
        reserved = estimate_leaf_clauses(filters)
        bm25 = None
        if hybrid is not None and not sparse_only:
            bm25 = hybrid.bm25_clause(self.clean_text(query))
            reserved += estimate_leaf_clauses(bm25)
        budget = self.clause_limit - reserved
        if budget < 1:
            raise ValueError(
                f"the filters use about {reserved} of the cluster's {self.clause_limit} clauses; "
                "no room is left for the query"
            )
        features = self._query_features(query, budget)
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
        self, query: Query, k: int = 10, filters: Any = None, hybrid: HybridLike = None, explain: bool = False
    ) -> list[Hit]:
        """The top ``k`` hits for ``query``.

        ``hybrid`` fuses BM25 and sparse client-side (see :class:`Hybrid`): one
        ``_msearch`` for both candidate lists (ids and scores), one ``_mget`` for
        the sources of the ``k`` fused hits. ``explain=True`` attaches to each hit the matching
        expansion terms, computed from its stored sparse vector (no extra request).
        Hit totals are not counted (``track_total_hits: false``), which lets the
        cluster skip documents that cannot reach the top ``k``.
        """
        k = self._check_k(k)
        hyb = self._hybrid_for(hybrid)
        features, body = self._body(query, filters, hyb, sparse_only=True)
        source = True if explain else {"excludes": [self.field]}
        if hyb is None:
            resp = self.backend.search(self.index, {**body, "size": k, "_source": source, "track_total_hits": False})
            _check_all_shards(resp, f"search on {self.index}")
            hits = [self._hit(h, float(h["_score"] or 0.0), features, explain, query) for h in resp["hits"]["hits"]]
            return hits
        # candidate lists carry ids and scores only; the k fused hits' sources come in one _mget
        size = max(k, hyb.candidates)
        bm25_body = {
            "query": self._with_filters(hyb.bm25_clause(self.clean_text(query)), copy.deepcopy(filters)),
            "size": size,
            "_source": False,
            "track_total_hits": False,
        }
        lists = self._msearch([bm25_body, {**body, "size": size, "_source": False, "track_total_hits": False}])
        ranked = [[(h["_id"], float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]] for resp in lists]
        fused = hyb.fuse(ranked[0], ranked[1])[:k]
        docs = self._mget([doc_id for doc_id, _, _ in fused], explain)
        out = []
        for doc_id, score, components in fused:
            hit = self._hit(docs.get(doc_id, {"_id": doc_id}), score, features, explain, query)
            hit.components = components
            out.append(hit)
        return out

    def _mget(self, ids: Sequence[str], with_sparse: bool) -> dict[str, dict]:
        if not ids:
            return {}
        # realtime=false reads what search saw (the last refresh) and skips the slow realtime path
        params = {"realtime": False} if with_sparse else {"realtime": False, "_source_excludes": self.field}
        resp = self.backend.request("POST", f"/{self.index}/_mget", body={"ids": list(ids)}, params=params)
        return {d["_id"]: d for d in resp.get("docs", []) if d.get("found")}

    def _msearch(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict]:
        lines = []
        for body in bodies:
            lines.append(json.dumps({"index": self.index}))
            lines.append(json.dumps(body))
        resp = self.backend.request("POST", "/_msearch", body="\n".join(lines) + "\n", ndjson=True)
        out = []
        for item in resp["responses"]:
            if "error" in item:
                err = item["error"]
                reason = err.get("reason") if isinstance(err, Mapping) else err
                raise ClusterError(f"POST /_msearch: {reason}", status=item.get("status"), body=err)
            _check_all_shards(item, f"search on {self.index}")
            out.append(item)
        return out

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
        beside it (raw weighted sum, see :meth:`Hybrid.combine_clauses`).
        """
        if self.mode == "tokens":
            raise ValueError(
                "rewrite encodes the body's query text; it needs mode 'llm' or 'inference-free', not 'tokens'"
            )
        hyb = self._hybrid_for(hybrid)

        def make_clause(text: str, max_terms: int, original: dict, boost: Optional[float], name: Optional[str]) -> dict:
            features = self._query_features(text, max_terms)
            if hyb is None:
                return self._clause(features, boost=boost, name=name)
            return hyb.combine_clauses(original, self._clause(features, boost=boost))

        return QueryRewriter(field).rewrite(body, make_clause, self.clause_limit, keeps_original=hyb is not None)


def _check_all_shards(response: Mapping[str, Any], what: str) -> None:
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
