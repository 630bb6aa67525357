"""The ingest job: read a corpus -> encode with Echo-SPLADE on Ray actors -> bulk-index, resumable, with dead letters;
:func:`index_text_only` writes a corpus's text alone (a BM25-only index, no encoding).

Imports ``client``, ``mappings`` and the public ``encoder`` API only; Ray is
imported where the pipeline runs, so the readers and the bulk writer work
without starting it.
"""

import importlib

from ._backoff import Backoff
from ._bulk_index_error import BulkIndexError
from ._bulk_writer import BulkWriter
from ._corpus_reader import RECORD_FIELDS, CorpusFormat, CorpusReader
from ._dead_letter import DEAD_LETTER_REASONS, DeadLetter
from ._ingest_report import IngestReport
from ._model_info import ModelInfo
from ._pipeline_rows import ROW_STATUSES, STATUS_DEAD, STATUS_ENCODED, STATUS_SKIPPED, RowStatus
from ._ray_runtime import RayRuntime
from ._ray_start_error import RayStartError
from ._text_only_index import index_text_only

__all__ = [
    "Backoff",
    "BulkIndexError",
    "BulkWriter",
    "CorpusDatasource",
    "CorpusFormat",
    "CorpusReader",
    "DEAD_LETTER_REASONS",
    "DEFAULT_DOC_TOP_K",
    "DEFAULT_INGEST_MODEL",
    "DeadLetter",
    "EncodeBatch",
    "IngestJob",
    "IngestReport",
    "ModelInfo",
    "ROW_STATUSES",
    "RayRuntime",
    "RayStartError",
    "RowStatus",
    "STATUS_DEAD",
    "STATUS_ENCODED",
    "STATUS_SKIPPED",
    "RECORD_FIELDS",
    "WriteBatch",
    "document_text",
    "index_text_only",
]

_LAZY = {
    "CorpusDatasource": "._corpus_datasource",
    "EncodeBatch": "._encode_batch",
    "document_text": "._encode_batch",
    "WriteBatch": "._write_batch",
    "IngestJob": "._ingest_job",
    "DEFAULT_DOC_TOP_K": "._ingest_job",
    "DEFAULT_INGEST_MODEL": "._ingest_job",
}


def __getattr__(name: str):
    """Ray-dependent names load on first use (``import ray`` takes seconds)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
