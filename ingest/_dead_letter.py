from __future__ import annotations

import collections
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, TextIO, Union

logger = logging.getLogger(__name__)

__all__ = ["DeadLetter", "DEAD_LETTER_REASONS"]

#: Reason codes written to the dead-letter file, with what each one means.
DEAD_LETTER_REASONS: Mapping[str, str] = {
    "invalid_json": "the line is not valid JSON",
    "not_an_object": "the line is JSON but not an object",
    "undecodable_bytes": "the line is not valid UTF-8",
    "missing_id": "the record has no (or an empty) id field",
    "duplicate_id": "the id was already read earlier in this run",
    "invalid_field": "the id, title or text field has an unusable type (list, object, ...)",
    "empty_document": "title and text are both empty or whitespace",
    "encoding_failed": "the encoder could not encode the document (an error, or non-finite weights)",
    "empty_vector": "the encoder gave the document no term with a positive weight: nothing to index",
    "rejected": "the cluster rejected the document (its reason is in `detail`)",
}


class DeadLetter:
    """Append-only JSONL file of records that could not be ingested, and their counts.

    One line per bad record::

        {"reason": "duplicate_id", "doc_id": "42", "file": "corpus.jsonl",
         "line": 17, "offset": 20480, "detail": "...", "raw": "..."}

    ``reason`` is one of :data:`DEAD_LETTER_REASONS`; ``line``/``offset`` (JSONL)
    or ``row`` (Parquet) say where the record is, ``doc_id`` is present when the
    record had one, ``detail`` is a human-readable explanation (the cluster's
    own error type and reason for rejections) and ``raw`` the start of the
    offending input. The file is created (truncated) by :meth:`open` or by the
    first :meth:`add`; :meth:`discard_previous` removes an earlier run's file
    so that a clean run leaves none. Thread-safe.
    """

    #: Characters of the offending input kept in ``raw``.
    RAW_CHARS = 500

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._fh: Optional[TextIO] = None

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def open(self) -> DeadLetter:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")
        return self

    def discard_previous(self) -> None:
        """Remove the file if a previous run left one (and nothing was written by this one)."""
        with self._lock:
            if self._fh is None and self.path.is_file():
                self.path.unlink()

    def add(
        self,
        reason: str,
        *,
        doc_id: Optional[str] = None,
        detail: Optional[str] = None,
        raw: Optional[str] = None,
        **where: Any,
    ) -> None:
        """Record one bad document. ``where``: ``file``, ``line``, ``offset``, ``row``."""
        if reason not in DEAD_LETTER_REASONS:
            raise ValueError(f"reason must be one of {sorted(DEAD_LETTER_REASONS)}, got {reason!r}")
        record: dict[str, Any] = {"reason": reason}
        if doc_id is not None and doc_id != "":
            record["doc_id"] = doc_id
        record.update({k: v for k, v in where.items() if v is not None})
        if detail:
            record["detail"] = detail
        if raw:
            record["raw"] = raw[: self.RAW_CHARS]
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            handle = self.open()._fh
            if handle is None:  # open() sets it
                raise RuntimeError(f"dead-letter file {self.path} could not be opened")
            handle.write(line + "\n")
            handle.flush()
            self.counts[reason] += 1
        logger.debug("dead letter: %s", line)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> DeadLetter:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeadLetter(path={str(self.path)!r}, count={self.count})"
