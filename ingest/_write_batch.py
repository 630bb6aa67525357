from __future__ import annotations

import logging
from typing import Any, Optional

import pyarrow as pa

from echo_splade.client import connect

from ._bulk_writer import BulkWriter
from ._pipeline_rows import REJECTED, STATUS_ENCODED, WRITE_DROPS

logger = logging.getLogger(__name__)

__all__ = ["WriteBatch"]


class WriteBatch:
    """Ray Data callable class: bulk-index the encoded rows of a batch, with this actor's own client.

    Rows with ``status == "encoded"`` are written as ``index`` actions
    (``_id`` = ``doc_id``, source = ``doc``) through a :class:`BulkWriter`;
    the output has one row per input row, without ``doc``, plus ``indexed``
    (bool). A document the cluster rejects for good gets ``reason="rejected"``
    and the cluster's error type and reason in ``detail``. When the cluster
    stays unreachable after the writer's retries, its ``ClusterError`` fails
    the batch (and the job).

    Args:
        connection: ``ConnectionConfig`` of the cluster.
        index: the index (or alias) to write to.
        writer_options: keyword arguments of :class:`BulkWriter` (``max_chunk_docs``, ``max_retries``, ...).
    """

    def __init__(self, connection: Any, index: str, writer_options: Optional[dict] = None) -> None:
        self.backend = connect(connection)
        self.writer = BulkWriter(self.backend, index, **(writer_options or {}))

    def __call__(self, batch):
        ids = batch.column("doc_id").to_pylist()
        status = batch.column("status").to_pylist()
        docs = batch.column("doc").to_pylist()
        reasons = batch.column("reason").to_pylist()
        details = batch.column("detail").to_pylist()
        position = {ids[i]: i for i, s in enumerate(status) if s == STATUS_ENCODED}
        indexed = [False] * len(ids)
        actions = ({"_id": ids[i], "_source": docs[i]} for i in position.values())
        for ok, item in self.writer.streaming_bulk(actions):
            info = next(iter(item.values()))
            i = position[info["_id"]]
            if ok:
                indexed[i] = True
            else:
                error = info.get("error") or {}
                if isinstance(error, dict):
                    detail = f"HTTP {info.get('status')}: {error.get('type', 'error')}: {error.get('reason', '')}"
                    cause = error.get("caused_by")
                    if isinstance(cause, dict):
                        detail += f" (caused by {cause.get('type')}: {cause.get('reason')})"
                else:
                    detail = f"HTTP {info.get('status')}: {error}"
                reasons[i], details[i] = REJECTED, detail
        out = batch.drop_columns(list(WRITE_DROPS))  # then WRITE_ADDS, in that order
        out = out.append_column("reason", pa.array(reasons, pa.string()))
        out = out.append_column("detail", pa.array(details, pa.string()))
        return out.append_column("indexed", pa.array(indexed, pa.bool_()))
