from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Optional

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ._corpus_reader import RECORD_FIELDS, CorpusReader

logger = logging.getLogger(__name__)

__all__ = ["CorpusDatasource", "record_schema"]


def record_schema():
    """Arrow schema of the reader's records (:data:`RECORD_FIELDS`)."""
    ints = {"line", "offset", "row"}
    return pa.schema([(name, pa.int64() if name in ints else pa.string()) for name in RECORD_FIELDS])


class CorpusDatasource(Datasource):
    """A Ray Data source that streams a :class:`CorpusReader` as Arrow blocks of ``block_rows`` records.

    It makes ONE read task on purpose: duplicate ids are found across the whole
    corpus, and reading/parsing is far faster than encoding, so it is never the
    bottleneck. The task yields block after block (a streaming generator that
    Ray Data backpressures), so memory stays flat in the corpus size. Bad
    records are part of the stream, marked by a non-empty ``reason``.
    """

    def __init__(self, reader: CorpusReader, block_rows: int = 1000, limit: Optional[int] = None) -> None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.reader = reader
        self.block_rows = block_rows
        self.limit = limit

    def get_name(self) -> str:
        return "Corpus"

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return None

    def _blocks(self) -> Iterator:
        schema = record_schema()
        read = 0
        for batch in self.reader.iter_batches(self.block_rows):
            if self.limit is not None:
                batch = batch[: self.limit - read]
            read += len(batch)
            if batch:
                yield pa.Table.from_pylist(batch, schema=schema)
            if self.limit is not None and read >= self.limit:
                break
        logger.info("read %d records from %s", read, self.reader.path)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None, data_context=None) -> list:
        metadata = BlockMetadata(
            num_rows=None, size_bytes=None, exec_stats=None, input_files=tuple(str(f) for f in self.reader.files)
        )
        return [ReadTask(self._blocks, metadata, schema=record_schema())]
