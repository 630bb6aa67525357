"""A BM25-only index: the corpus's ``title``/``text`` written without encoding anything."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any, Union

from echo_splade.client import Backend
from echo_splade.mappings import IndexSpec, bulk_load_settings, document_source, provision

from ._bulk_writer import BulkWriter
from ._corpus_reader import CorpusFormat, CorpusReader

logger = logging.getLogger(__name__)

__all__ = ["index_text_only"]


def index_text_only(
    backend: Backend, index: str, corpus: Union[str, os.PathLike], format: CorpusFormat = "beir"
) -> dict[str, Any]:
    """Provision ``index`` and write each corpus document's ``doc_id``/``title``/``text``, no vectors.

    Uses :class:`CorpusReader` and :class:`BulkWriter` and the provisioning and
    bulk-load settings of :mod:`echo_splade.mappings`. The index records no model,
    so the sparse systems of an evaluation refuse it. Bad corpus records are
    skipped (counted and logged). Used by ``Evaluator`` (a ``bm25``-only run) and
    ``HardNegativeMiner``.

    Args:
        backend: a connected :class:`echo_splade.client.Backend`.
        index: the index (or alias) to provision.
        corpus: the corpus path (a BEIR folder by default).
        format: the :class:`CorpusReader` format.

    Returns:
        ``{"indexed": documents written, "skipped_bad_records": {reason: count}, "seconds": wall time}``.

    Raises:
        ValueError: the cluster rejected documents.
    """
    logger.info(
        "index %s is missing: provisioning it and indexing the text of %s (BM25 only, no encoding)", index, corpus
    )
    started = time.monotonic()
    provision(backend, IndexSpec(index))
    skipped: dict[str, int] = {}

    def actions() -> Iterator[dict]:
        for record in CorpusReader(corpus, format=format):
            if record["reason"]:
                skipped[record["reason"]] = skipped.get(record["reason"], 0) + 1
                continue
            source = document_source(record["doc_id"], record["title"], record["text"])
            yield {"_id": record["doc_id"], "_source": source}

    indexed, failed = 0, []
    with bulk_load_settings(backend, index):
        for ok, item in BulkWriter(backend, index).streaming_bulk(actions()):
            if ok:
                indexed += 1
            else:
                failed.append(item)
    if failed:
        raise ValueError(f"{len(failed)} document(s) were rejected by the cluster, e.g. {failed[0]}")
    if skipped:
        logger.warning("skipped bad corpus records: %s", skipped)
    return {"indexed": indexed, "skipped_bad_records": skipped, "seconds": round(time.monotonic() - started, 3)}
