from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args

from echo_splade.client import InputError

logger = logging.getLogger(__name__)

__all__ = ["CorpusReader", "CorpusFormat", "RECORD_FIELDS"]

CorpusFormat = Literal["auto", "beir", "jsonl", "parquet"]
#: The clusters refuse a whole bulk request holding a longer ``_id``: such records are marked instead.
MAX_ID_BYTES = 512

#: Keys of every record the reader yields (good and bad alike, so they form one table).
#: ``reason`` is ``""`` for a good record, else a :data:`~echo_splade.ingest.DEAD_LETTER_REASONS` code;
#: ``line``/``offset`` locate a JSONL record (1-based line, byte offset of its start),
#: ``row`` a Parquet one (0-based over all files); ``-1`` where not applicable.
RECORD_FIELDS = ("doc_id", "title", "text", "reason", "detail", "file", "line", "offset", "row", "raw")


def _record(
    doc_id: str = "",
    title: str = "",
    text: str = "",
    reason: str = "",
    detail: str = "",
    file: str = "",
    line: int = -1,
    offset: int = -1,
    row: int = -1,
    raw: str = "",
) -> dict:
    return {
        "doc_id": doc_id,
        "title": title,
        "text": text,
        "reason": reason,
        "detail": detail,
        "file": file,
        "line": line,
        "offset": offset,
        "row": row,
        "raw": raw,
    }


class CorpusReader:
    """Stream a corpus as records, sending bad ones aside instead of stopping.

    Formats (``format="auto"`` picks by path):

    - ``"beir"``: a BEIR folder holding ``corpus.jsonl`` (or ``corpus.jsonl.gz``) with ``_id``, ``title``, ``text``.
    - ``"jsonl"``: one JSON object per line (``.jsonl``/``.json``/``.ndjson``, optionally ``.gz``);
      the field names are configurable.
    - ``"parquet"``: a ``.parquet`` file or a folder of them, read by row groups.

    Reading is streamed: memory does not grow with the corpus, except for the set
    of ids already read (needed to catch duplicates; a few dozen bytes per id).
    Every record comes out as a dict with the keys :data:`RECORD_FIELDS`; a bad
    record (not JSON, undecodable bytes, no id, duplicate id, empty title and
    text, unusable field type, an id over :data:`MAX_ID_BYTES`) has a non-empty ``reason`` and is yielded too, so
    the caller can dead-letter and count it. Iterating again starts over.

    Args:
        path: the corpus file or folder.
        format: one of :data:`CorpusFormat`.
        id_field, title_field, text_field: field (column) names. ``title_field``
            may be absent from the data (titles are then empty).
        batch_size: records per batch from :meth:`iter_batches` (and Parquet rows per read).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        format: CorpusFormat = "auto",
        id_field: str = "_id",
        title_field: str = "title",
        text_field: str = "text",
        batch_size: int = 1000,
    ) -> None:
        if format not in get_args(CorpusFormat):
            raise ValueError(f"format must be one of {get_args(CorpusFormat)}, got {format!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for name, value in (("id_field", id_field), ("title_field", title_field), ("text_field", text_field)):
            if not value:
                raise ValueError(f"{name} must be a non-empty field name")
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"corpus not found: {self.path}")
        self.format, self.files = self._resolve(self.path, format)
        self.id_field = id_field
        self.title_field = title_field
        self.text_field = text_field
        self.batch_size = batch_size

    # -- layout --------------------------------------------------------------
    @staticmethod
    def _resolve(path: Path, format: str) -> tuple[str, list[Path]]:
        if path.is_dir():
            corpus = [path / n for n in ("corpus.jsonl", "corpus.jsonl.gz") if (path / n).is_file()]
            parquet = sorted(p for p in path.glob("*.parquet") if p.is_file())
            if format in ("auto", "beir") and corpus:
                return "beir", corpus[:1]
            if format in ("auto", "parquet") and parquet:
                return "parquet", parquet
            wanted = {"beir": "corpus.jsonl", "parquet": "*.parquet files", "jsonl": "a file, not a folder"}
            what = wanted.get(format, "corpus.jsonl or *.parquet files")
            raise InputError(f"corpus folder {path} does not hold {what}", option="corpus")
        if format == "beir":
            raise InputError(
                f"a BEIR corpus must be a folder holding corpus.jsonl, got the file {path}", option="corpus"
            )
        if format == "parquet" or (format == "auto" and path.suffix == ".parquet"):
            return "parquet", [path]
        return "jsonl", [path]

    def __repr__(self) -> str:
        return f"CorpusReader(path={str(self.path)!r}, format={self.format!r}, id_field={self.id_field!r})"

    def count_hint(self) -> Optional[int]:
        """The number of records (JSONL: non-blank lines, by a fast binary pass; Parquet: from metadata)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq  # lazy: heavy, and only Parquet corpora need it

            return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        total = 0
        for f in self.files:
            with self._open_binary(f) as fh:
                for raw in fh:
                    if raw.strip():
                        total += 1
        return total

    # -- reading ---------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        seen: set[str] = set()
        for record in self._raw_records():
            if not record["reason"]:
                if record["doc_id"] in seen:
                    record.update(
                        reason="duplicate_id",
                        detail=f"id {record['doc_id']!r} was already read in this run",
                        title="",
                        text="",
                    )
                else:
                    seen.add(record["doc_id"])
            yield record

    def iter_batches(self, batch_size: Optional[int] = None) -> Iterator[list[dict]]:
        size = batch_size or self.batch_size
        batch: list[dict] = []
        for record in self:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _raw_records(self) -> Iterator[dict]:
        if self.format == "parquet":
            yield from self._parquet_records()
        else:
            for f in self.files:
                yield from self._jsonl_records(f)

    @staticmethod
    def _open_binary(path: Path):
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")

    def _jsonl_records(self, path: Path) -> Iterator[dict]:
        source = path.name
        offset = 0
        with self._open_binary(path) as fh:
            for number, raw in enumerate(fh, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                where: dict[str, Any] = {"file": source, "line": number, "offset": start}
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield _record(
                        reason="undecodable_bytes",
                        detail=str(exc),
                        raw=raw.decode("utf-8", errors="replace").strip(),
                        **where,
                    )
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    yield _record(reason="invalid_json", detail=str(exc), raw=line.strip(), **where)
                    continue
                if not isinstance(obj, dict):
                    yield _record(
                        reason="not_an_object", detail=f"got a JSON {type(obj).__name__}", raw=line.strip(), **where
                    )
                    continue
                yield self._from_fields(
                    obj.get(self.id_field), obj.get(self.title_field), obj.get(self.text_field), where, line
                )

    def _parquet_records(self) -> Iterator[dict]:
        import pyarrow.parquet as pq  # lazy: heavy, and only Parquet corpora need it

        row = 0
        for path in self.files:
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
            for field in (self.id_field, self.text_field):
                if field not in names:
                    raise InputError(
                        f"{path}: no column {field!r} (columns: {sorted(names)}); set the id/text field names",
                        option="id_field/text_field",
                    )
            columns = [c for c in (self.id_field, self.title_field, self.text_field) if c in names]
            for batch in pf.iter_batches(batch_size=self.batch_size, columns=columns):
                data = batch.to_pydict()
                ids = data[self.id_field]
                titles = data.get(self.title_field) or [None] * len(ids)
                texts = data[self.text_field]
                for doc_id, title, text in zip(ids, titles, texts):
                    yield self._from_fields(doc_id, title, text, {"file": path.name, "row": row}, None)
                    row += 1

    @staticmethod
    def _as_text(value: Any) -> Optional[str]:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return None

    def _from_fields(self, doc_id: Any, title: Any, text: Any, where: dict, raw: Optional[str]) -> dict:
        raw = (raw or "").strip()
        if isinstance(doc_id, bool) or isinstance(doc_id, (list, dict)):
            return _record(
                reason="invalid_field",
                detail=f"id field {self.id_field!r} is a {type(doc_id).__name__}",
                raw=raw,
                **where,
            )
        doc_id = "" if doc_id is None else str(doc_id).strip()
        if not doc_id:
            return _record(reason="missing_id", detail=f"no {self.id_field!r} field, or it is empty", raw=raw, **where)
        if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
            return _record(
                reason="invalid_field", detail=f"the id is longer than {MAX_ID_BYTES} UTF-8 bytes", raw=raw, **where
            )
        title_s, text_s = self._as_text(title), self._as_text(text)
        if title_s is None or text_s is None:
            name = self.title_field if title_s is None else self.text_field
            bad = title if title_s is None else text
            return _record(
                doc_id=doc_id,
                reason="invalid_field",
                detail=f"field {name!r} is a {type(bad).__name__}, not a string",
                raw=raw,
                **where,
            )
        if not title_s.strip() and not text_s.strip():
            return _record(
                doc_id=doc_id, reason="empty_document", detail="title and text are both empty", raw=raw, **where
            )
        return _record(doc_id=doc_id, title=title_s, text=text_s, **where)
