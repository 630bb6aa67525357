"""The rows that flow through the ingest pipeline, defined once: columns added and dropped by each stage,
and the status values of a row.

reader (:data:`RECORD_FIELDS`) -> :class:`EncodeBatch` (drops ``title``/``text``, adds ``status`` and
``doc``) -> :class:`WriteBatch` (drops ``doc``, adds ``indexed``) -> the driver (counts, dead letters).
``reason``/``detail`` travel through every stage: ``""`` for a good row, else a dead-letter reason code.
"""

from __future__ import annotations

from typing import Literal

from ._corpus_reader import RECORD_FIELDS

__all__ = [
    "ENCODE_ADDS",
    "ENCODE_DROPS",
    "LOCATION_FIELDS",
    "RECORD_FIELDS",
    "ROW_STATUSES",
    "STATUS_DEAD",
    "STATUS_ENCODED",
    "STATUS_SKIPPED",
    "WRITE_ADDS",
    "WRITE_DROPS",
    "EMPTY_VECTOR",
    "ENCODING_FAILED",
    "REJECTED",
    "RowStatus",
]

RowStatus = Literal["encoded", "skipped", "dead"]
STATUS_ENCODED: RowStatus = "encoded"
"""Encoded: ``doc`` holds the document source as JSON, for the writer."""
STATUS_SKIPPED: RowStatus = "skipped"
"""Skipped by ``resume``: already in the index with the same ``model_rev``."""
STATUS_DEAD: RowStatus = "dead"
"""Not indexed: ``reason`` says why (a bad record from the reader, or an encoding failure)."""
ROW_STATUSES: tuple[RowStatus, ...] = (STATUS_ENCODED, STATUS_SKIPPED, STATUS_DEAD)

#: Dead-letter reasons the pipeline's stages set (the reader sets the others; all in ``DEAD_LETTER_REASONS``).
ENCODING_FAILED = "encoding_failed"
EMPTY_VECTOR = "empty_vector"
REJECTED = "rejected"

#: Columns that locate a record in the corpus (``-1``/``""`` where not applicable).
LOCATION_FIELDS = ("file", "line", "offset", "row")
#: The encode stage drops these (the document source carries them) and re-adds ``reason``/``detail``.
ENCODE_DROPS = ("title", "text", "reason", "detail")
ENCODE_ADDS = ("reason", "detail", "status", "doc")
#: The write stage drops the document source and re-adds ``reason``/``detail`` (``rejected``).
WRITE_DROPS = ("doc", "reason", "detail")
WRITE_ADDS = ("reason", "detail", "indexed")
