"""What the index and its cluster tell the query side, resolved once each and logged."""

from __future__ import annotations

import logging
from typing import Any, Optional

from echo_splade.client import Backend, ClusterStateError
from echo_splade.mappings import MODEL_FIELD, MODEL_REV_FIELD, read_index_meta

from ._document_frequencies import DocumentFrequencies
from ._sparse_query import SparseFieldType, detect_field_type, read_clause_limit

logger = logging.getLogger(__name__)

__all__ = ["IndexFacts"]


class IndexFacts:
    """The cluster's clause limit, the sparse field's type, the index ``_meta`` and the document frequencies
    over the sparse field, each read on first use.

    A value given to the constructor is used as is (no request). Each value read from the
    cluster is logged once (INFO), so a log says which limit, type and model a query side used.

    Args:
        backend: the cluster.
        index: the alias (or index) searched.
        field: the sparse field.
        clause_limit: the boolean clause limit (``None``: ``read_clause_limit``).
        field_type: ``"rank_features"``/``"sparse_vector"`` (``None``: ``detect_field_type``).
    """

    def __init__(
        self,
        backend: Backend,
        index: str,
        field: str,
        clause_limit: Optional[int] = None,
        field_type: Optional[SparseFieldType] = None,
    ) -> None:
        self.backend = backend
        self.index = index
        self.field = field
        self._clause_limit = clause_limit
        self._field_type: Optional[SparseFieldType] = field_type
        self._meta: Optional[dict] = None
        self._dfs: Optional[DocumentFrequencies] = None

    @property
    def clause_limit(self) -> int:
        """The cluster's boolean clause limit."""
        if self._clause_limit is None:
            self._clause_limit = read_clause_limit(self.backend)
            logger.info("%s: the cluster's clause limit is %d", self.index, self._clause_limit)
        return self._clause_limit

    @property
    def field_type(self) -> SparseFieldType:
        """The mapped type of the sparse field in every index behind the alias."""
        if self._field_type is None:
            self._field_type = detect_field_type(self.backend, self.index, self.field)
            logger.info("%s: field %s is a %s field", self.index, self.field, self._field_type)
        return self._field_type

    @property
    def meta(self) -> dict:
        """The index ``_meta`` written at provisioning (model, model_rev, feature scheme, templates)."""
        if self._meta is None:
            self._meta = dict(read_index_meta(self.backend, self.index) or {})
            logger.info(
                "%s: index _meta records model %s (model_rev %s)",
                self.index,
                self._meta.get(MODEL_FIELD),
                self._meta.get(MODEL_REV_FIELD),
            )
        return self._meta

    @property
    def document_frequencies(self) -> DocumentFrequencies:
        """Document frequencies over the sparse field (``inference-free`` query weights)."""
        if self._dfs is None:
            self._dfs = DocumentFrequencies(self.backend, self.index, self.field, self.field_type)
        return self._dfs

    def model(self, what: str) -> str:
        """The name that reloads the index's encoder (``_meta`` ``model``), to load ``what`` from.

        Raises:
            ClusterStateError: the index records no model.
        """
        model = self.meta.get(MODEL_FIELD)
        if not model:
            raise ClusterStateError(
                f"index {self.index!r} records no model in its _meta; pass the {what} explicitly", option=what
            )
        return str(model)

    def warn_if_other_model(self, encoder: Any) -> None:
        """Log a warning when ``encoder``'s ``model_rev`` differs from the index's (scores would mix two models)."""
        try:
            stored = self.meta.get(MODEL_REV_FIELD)
        except Exception as exc:  # the index may predate _meta; querying still works
            logger.debug("cannot read the _meta of %s: %s", self.index, exc)
            return
        rev = getattr(encoder, "model_rev", None)
        if stored and rev and stored != rev:
            logger.warning(
                "index %s was encoded with model_rev %s but the query encoder is %s; scores mix two models",
                self.index,
                stored,
                rev,
            )
