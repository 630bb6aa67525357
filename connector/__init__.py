"""Query side of echo-splade: put learned sparse retrieval behind an existing search box.

:class:`SparseRetriever` turns user queries into weighted ``rank_feature``
(or Elasticsearch ``sparse_vector``) queries, searches with the caller's own
opensearch-py / elasticsearch-py client, fuses with BM25 (:class:`Hybrid`),
rewrites existing request bodies (:class:`QueryRewriter`) and explains hits
(:class:`Explanation`).
"""

from ._document_frequencies import DocumentFrequencies
from ._explanation import Explanation
from ._hit import Hit
from ._hybrid import Hybrid
from ._query_rewriter import QueryRewriter, RewriteWarning
from ._sparse_query import DEFAULT_CLAUSE_LIMIT, read_clause_limit, select_terms, sparse_clause
from ._sparse_retriever import Mode, SparseRetriever
from ._term_contribution import TermContribution

__all__ = [
    "DEFAULT_CLAUSE_LIMIT",
    "DocumentFrequencies",
    "Explanation",
    "Hit",
    "Hybrid",
    "Mode",
    "QueryRewriter",
    "RewriteWarning",
    "SparseRetriever",
    "TermContribution",
    "read_clause_limit",
    "select_terms",
    "sparse_clause",
]
