"""Query side of echo-splade: put learned sparse retrieval behind an existing search box.

:class:`SparseRetriever` turns user queries (one :class:`QueryEncoder` per mode, what the index
tells us resolved once by :class:`IndexFacts`) into weighted ``rank_feature``
(or Elasticsearch ``sparse_vector``) queries, searches with the caller's own
opensearch-py / elasticsearch-py client, fuses with BM25 (:class:`Hybrid`),
rewrites existing request bodies (:class:`QueryRewriter`) and explains hits
(:class:`Explanation`).

Usage::

    from opensearchpy import OpenSearch
    from echo_splade.connector import SparseRetriever

    retriever = SparseRetriever(OpenSearch("http://127.0.0.1:9200"), "scifact")  # model from the index _meta
    hits = retriever.search("does vitamin D prevent fractures", k=10, explain=True)
    hits = retriever.search("does vitamin D prevent fractures", hybrid="rrf")      # BM25 + sparse, fused client-side
    body = retriever.rewrite(existing_body, field="text")                        # drop-in for an app's own bodies

Defaults: ``query_top_k=64`` terms, ``min_weight=0``, no hybrid; hybrid fusion defaults to
weighted fusion (min-max normalised scores, sparse weight 0.5, 100 candidates per list; chosen on dev data). Query text only ever
reaches ``rank_feature``/``sparse_vector`` clauses and ``multi_match``, never ``query_string``.
"""

from ._document_frequencies import DocumentFrequencies
from ._explanation import Explanation
from ._hit import Hit
from ._hybrid import DEFAULT_SPARSE_WEIGHT, Hybrid
from ._index_facts import IndexFacts
from ._inference_free_query_encoder import InferenceFreeQueryEncoder
from ._llm_query_encoder import LlmQueryEncoder
from ._query_dsl import COMPOUND_QUERIES, QueryVisit, walk_query
from ._query_encoder import QueryEncoder
from ._query_rewriter import QueryRewriter, RewriteWarning
from ._query_text import clean_query_text
from ._query_vector_cache import QueryVectorCache
from ._sparse_query import (
    DEFAULT_CLAUSE_LIMIT,
    estimate_leaf_clauses,
    read_clause_limit,
    select_terms,
    sparse_clause,
    uses_term_clauses,
)
from ._sparse_retriever import Mode, SparseRetriever
from ._term_contribution import TermContribution
from ._token_label import PieceScheme, piece_scheme, token_label
from ._token_query_encoder import TokenQueryEncoder
from ._two_phase import TwoPhase

__all__ = [
    "COMPOUND_QUERIES",
    "DEFAULT_CLAUSE_LIMIT",
    "DEFAULT_SPARSE_WEIGHT",
    "DocumentFrequencies",
    "Explanation",
    "Hit",
    "Hybrid",
    "IndexFacts",
    "InferenceFreeQueryEncoder",
    "LlmQueryEncoder",
    "Mode",
    "PieceScheme",
    "QueryEncoder",
    "QueryRewriter",
    "QueryVectorCache",
    "QueryVisit",
    "RewriteWarning",
    "SparseRetriever",
    "TermContribution",
    "TokenQueryEncoder",
    "TwoPhase",
    "clean_query_text",
    "estimate_leaf_clauses",
    "piece_scheme",
    "read_clause_limit",
    "select_terms",
    "sparse_clause",
    "token_label",
    "uses_term_clauses",
    "walk_query",
]
