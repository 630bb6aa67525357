"""The one reader of a BEIR-layout folder's ``queries.jsonl``, ``qrels/<split>.tsv`` and ``corpus.jsonl``.

Torch-free (standard library only), so the cluster side (``echo_splade.integration``'s
:class:`EvalDataset`) reads queries and judgments with the same code as training
(:func:`load_training_examples`). Ingest streams corpora with its own dead-letter-aware
``CorpusReader``; :func:`iter_beir_corpus` is the plain reader that training uses.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)

__all__ = ["QREL_HEADER_IDS", "iter_beir_corpus", "iter_beir_qrels", "read_beir_qrels", "read_beir_queries"]

#: First cells of a qrels header row (compared stripped and lower-cased); such a first row is skipped.
QREL_HEADER_IDS = ("query-id", "query_id", "qid")


def iter_beir_qrels(path: Path) -> Iterator[tuple[str, str, float]]:
    """``(query_id, doc_id, score)`` of each judgment of a qrels TSV, in file order (duplicates kept).

    Blank rows and a header row (``query-id  corpus-id  score``) are skipped; ids are stripped.
    A score > 0 means relevant; callers decide what to do with the others.

    Raises:
        ValueError: a row with fewer than three cells or a score that is not a number
            (named with its line number).
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0].strip().lower() in QREL_HEADER_IDS:
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}")
            try:
                score = float(row[2])
            except ValueError:
                raise ValueError(f"{path}:{number}: score {row[2]!r} is not a number") from None
            yield row[0].strip(), row[1].strip(), score


def read_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: score}}`` of a qrels TSV (:func:`iter_beir_qrels`; scores as ``int``, the last
    judgment of a pair wins; queries in the order of their first judgment).

    Raises:
        ValueError: a malformed row, or a file that holds no judgment.
    """
    qrels: dict[str, dict[str, int]] = {}
    for query_id, doc_id, score in iter_beir_qrels(path):
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    if not qrels:
        raise ValueError(f"{path} holds no judgments")
    return qrels


def read_beir_queries(path: Path, ids: Optional[Collection[str]] = None) -> dict[str, str]:
    """``{query_id: text}`` of a ``queries.jsonl`` (``_id``, ``text``); queries with empty text are skipped
    (logged). ``ids``: keep only these query ids (``None``: all).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a query record with ``_id`` and ``text`` (named with its line number).
    """
    if not path.is_file():
        raise FileNotFoundError(f"queries file not found: {path}")
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                qid, text = str(obj["_id"]), obj["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a query record with '_id' and 'text' ({exc})") from None
            if ids is not None and qid not in ids:
                continue
            if not isinstance(text, str) or not text.strip():
                logger.warning("%s:%d: query %r has empty text; skipped", path, number, qid)
                continue
            queries[qid] = text
    return queries


def iter_beir_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``corpus.jsonl`` (``_id``, ``title``, ``text``), blank lines skipped."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
