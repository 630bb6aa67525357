"""The indexed document, one owner: its source fields and the token weights -> feature keys conversion.

Every document in an echo-splade index has the source

    {"doc_id", "title", "text", "sparse": {feature key: weight}, "model", "model_rev"}

(``_id`` = ``doc_id``); a text-only (BM25) index holds ``doc_id``, ``title`` and ``text`` alone.
``model`` is THE name that reloads the encoder (``EchoSpladeEncoder.from_pretrained(model)``):
the same key in each document's source, in the index ``_meta`` (:class:`IndexSpec`), in
``IngestJob``/``IngestReport`` and in ``eval`` reports. The encoder calls it ``source`` (its
``model_id`` is only the base model); :func:`model_name` reads it from an encoder. Documents and
``_meta`` written before this module existed use the same keys, so they read back unchanged.

:func:`sparse_to_features` (in ``_feature_names``) is the one conversion of ``{token: weight}``
into ``rank_features`` keys: the ingest writer and the query side both use it, with the same
rules (weights validated, those below ``Float.MIN_NORMAL`` dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, TypedDict

from ._feature_names import sparse_to_features

__all__ = [
    "DOCUMENT_FIELDS",
    "KEYWORD_FIELDS",
    "MODEL_FIELD",
    "MODEL_REV_FIELD",
    "SPARSE_FIELD",
    "TEXT_FIELDS",
    "DocumentSource",
    "document_source",
    "model_name",
]

SPARSE_FIELD = "sparse"
"""The ``rank_features`` / ``sparse_vector`` field of the document vector."""
TEXT_FIELDS = ("title", "text")
"""The BM25 text fields."""
MODEL_FIELD = "model"
"""The name that reloads the encoder (document source and index ``_meta``)."""
MODEL_REV_FIELD = "model_rev"
"""The encoder's stable revision hash (document source and index ``_meta``; ``ingest --resume`` compares it)."""
KEYWORD_FIELDS = ("doc_id", MODEL_FIELD, MODEL_REV_FIELD)
"""The keyword fields."""
DOCUMENT_FIELDS = ("doc_id", *TEXT_FIELDS, SPARSE_FIELD, MODEL_FIELD, MODEL_REV_FIELD)
"""Every field of an encoded document's source, in the order they are written."""


class DocumentSource(TypedDict, total=False):
    """The ``_source`` of an indexed document (the last three only when it carries a vector)."""

    doc_id: str
    title: str
    text: str
    sparse: dict[str, float]
    model: str
    model_rev: str


def model_name(encoder: Any) -> Optional[str]:
    """The name that reloads ``encoder`` (its ``source``; else its ``model_id``), ``None`` when it has neither.

    Duck-typed: anything with ``source`` or ``model_id`` (an ``EchoSpladeEncoder``, the ingest
    job's model info, a benchmark's stand-in encoder).
    """
    name = getattr(encoder, "source", None) or getattr(encoder, "model_id", None)
    return str(name) if name else None


def document_source(
    doc_id: str,
    title: str,
    text: str,
    token_weights: Optional[Mapping[str, float]] = None,
    *,
    model: Optional[str] = None,
    model_rev: Optional[str] = None,
) -> DocumentSource:
    """The ``_source`` of one document.

    Without ``token_weights``: the text-only (BM25) document ``{doc_id, title, text}``. With them:
    ``sparse`` = :func:`sparse_to_features` of ``{token: weight}``, and ``model``/``model_rev``
    (both required: a vector without the model that made it cannot be queried).

    Raises:
        ValueError: a weight Lucene would refuse (see :func:`sparse_to_features`), or a vector
            without ``model``/``model_rev``.
    """
    source: DocumentSource = {"doc_id": doc_id, "title": title, "text": text}
    if token_weights is None:
        if model is not None or model_rev is not None:
            raise ValueError("model and model_rev describe a document vector; pass token_weights with them")
        return source
    if not model or not model_rev:
        raise ValueError(f"document {doc_id!r}: a vector needs the model and model_rev that made it")
    source["sparse"] = sparse_to_features(token_weights)
    source["model"] = model
    source["model_rev"] = model_rev
    return source
