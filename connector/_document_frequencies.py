from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Optional

from echo_splade.client import AuthorizationError, Backend

from ._sparse_query import SparseFieldType, sparse_clause, uses_term_clauses

logger = logging.getLogger(__name__)

__all__ = ["DocumentFrequencies"]

SIDE_INDEX_SUFFIX = "-echo-splade-df"


class DocumentFrequencies:
    """Document frequencies of sparse features, computed from the index itself.

    A feature's document frequency is the number of documents whose sparse field
    holds it: the hit count of a query on it alone (``sparse_clause``), asked for many
    features at once with a ``filters`` aggregation (``size: 0``), so nothing
    needs to be stored at ingest.

    Values are cached in memory. :meth:`refresh` computes them for a whole
    vocabulary and stores the table, with the document count and the physical
    index it describes, in a small side index ``<index>-echo-splade-df`` (one
    document, unmapped object). A fresh instance loads that table when it still
    describes the index behind the alias; features missing from it are computed
    live. Call :meth:`refresh` after (re)ingesting to update the stored table.

    Args:
        backend: an :class:`echo_splade.client.Backend`.
        index: the alias or index searched.
        field: the sparse field (``rank_features`` or ``sparse_vector``).
        field_type: its mapped type.
        batch_size: features per ``filters`` aggregation request.
    """

    def __init__(
        self,
        backend: Backend,
        index: str,
        field: str = "sparse",
        field_type: SparseFieldType = "rank_features",
        batch_size: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.index = index
        self.field = field
        self.field_type = field_type
        self.batch_size = batch_size
        self.side_index = f"{index}{SIDE_INDEX_SUFFIX}"
        self._df: dict[str, int] = {}
        self._num_docs: Optional[int] = None
        self._loaded = False

    # -- public API --------------------------------------------------------
    @property
    def num_docs(self) -> int:
        """Documents in the index (as of the stored table or the last live computation)."""
        if self._num_docs is None:
            self._load()
            if self._num_docs is None:
                self._num_docs = self.backend.count(self.index)
        return self._num_docs

    def get(self, features: Iterable[str]) -> dict[str, int]:
        """``{feature: document frequency}`` for ``features`` (0 for features no document has)."""
        self._load()
        wanted = list(dict.fromkeys(features))
        missing = [f for f in wanted if f not in self._df]
        if missing:
            self._df.update(self._compute(missing))
        return {f: self._df[f] for f in wanted}

    def idf(self, features: Iterable[str]) -> dict[str, float]:
        """BM25-style ``log(1 + (N - df + 0.5) / (df + 0.5))`` for features with df > 0.

        Features no document holds are left out: they cannot match anything.
        """
        dfs = self.get(features)
        n = self.num_docs
        return {f: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for f, df in dfs.items() if df > 0}

    def refresh(self, features: Iterable[str]) -> int:
        """Recompute the table for ``features`` (e.g. the whole vocabulary) and store it.

        Returns the number of features with df > 0. Replaces the stored table.
        """
        self._df = {}
        self._num_docs = None
        table = self._compute(list(dict.fromkeys(features)))
        self._df = dict(table)
        self._store({f: df for f, df in table.items() if df > 0})
        self._loaded = True
        return sum(1 for df in table.values() if df > 0)

    def invalidate(self) -> None:
        """Forget cached values; the next lookup reloads the stored table or recomputes."""
        self._df = {}
        self._num_docs = None
        self._loaded = False

    # -- internals ---------------------------------------------------------
    def _physical(self) -> list[str]:
        aliases = self.backend.get_aliases(self.index)
        return sorted(aliases) if aliases else [self.index]

    def _compute(self, features: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        terms = uses_term_clauses(self.backend, self.field_type)
        for start in range(0, len(features), self.batch_size):
            chunk = features[start : start + self.batch_size]
            filters = {f: sparse_clause({f: 1.0}, self.field, self.field_type, terms=terms) for f in chunk}
            body = {"size": 0, "track_total_hits": True, "aggs": {"df": {"filters": {"filters": filters}}}}
            resp = self.backend.search(self.index, body)
            buckets = resp["aggregations"]["df"]["buckets"]
            out.update({f: int(buckets[f]["doc_count"]) for f in chunk})
            self._num_docs = int(resp["hits"]["total"]["value"])
        logger.debug("computed document frequencies of %d features on %s", len(features), self.index)
        return out

    def _store(self, table: Mapping[str, int]) -> None:
        try:
            self._write_side_index(table)
        except AuthorizationError as exc:
            # read-only credentials (a search role) cannot keep the table: it is computed live instead
            logger.warning(
                "document frequencies of %s not stored in %s (%s); they are computed live",
                self.index,
                self.side_index,
                exc.reason or exc,
            )

    def _write_side_index(self, table: Mapping[str, int]) -> None:
        if not self.backend.exists(self.side_index):
            self.backend.request(
                "PUT",
                f"/{self.side_index}",
                body={
                    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
                    "mappings": {"dynamic": False, "properties": {"physical": {"type": "keyword"}}},
                },
            )
        doc = {
            "index": self.index,
            "physical": self._physical(),
            "num_docs": self._num_docs,
            "field": self.field,
            "computed_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "df": dict(table),
        }
        self.backend.request("PUT", f"/{self.side_index}/_doc/{self.field}", body=doc, params={"refresh": "true"})
        logger.info("stored document frequencies of %d features for %s in %s", len(table), self.index, self.side_index)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        # a search with ignore_unavailable answers 200 whether or not the side index exists
        resp = self.backend.request(
            "POST",
            f"/{self.side_index}/_search",
            body={"size": 1, "query": {"ids": {"values": [self.field]}}},
            params={"ignore_unavailable": True},
        )
        found = resp.get("hits", {}).get("hits") or []
        if not found:
            return
        doc = found[0]
        source = doc.get("_source") or {}
        physical = self._physical()
        if source.get("physical") != physical:
            logger.warning(
                "stored document frequencies in %s describe %s, not %s; computing live "
                "(run DocumentFrequencies.refresh to update)",
                self.side_index,
                source.get("physical"),
                physical,
            )
            return
        self._df = {f: int(df) for f, df in (source.get("df") or {}).items()}
        self._num_docs = int(source["num_docs"])
        logger.debug("loaded %d document frequencies from %s", len(self._df), self.side_index)
