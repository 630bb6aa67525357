"""Training pairs: JSONL ``{"query", "positive", "negative"?}`` or a BEIR folder with train qrels."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._beir_folder import iter_beir_corpus, iter_beir_qrels, read_beir_queries

logger = logging.getLogger(__name__)

#: BEIR splits that must never be trained on.
HELD_OUT_SPLITS = ("test",)


@dataclass(frozen=True)
class TrainingExample:
    """One training example: a query, a relevant document and optionally a hard negative."""

    query: str
    positive: str
    negative: str | None = None


def document_text(title: str, text: str) -> str:
    """The text a document is encoded from: ``title`` and ``text`` on two lines (either may be empty)."""
    title, text = (title or "").strip(), (text or "").strip()
    return f"{title}\n{text}" if title and text else (title or text)


def load_training_examples(path: str | os.PathLike, split: str = "train") -> list[TrainingExample]:
    """Read training examples.

    Args:
        path: a ``.jsonl`` file with ``query``, ``positive`` and optional ``negative`` (text,
            or a list of texts: one example per negative), or a BEIR folder (``corpus.jsonl``,
            ``queries.jsonl``, ``qrels/<split>.tsv``): one example per judged-relevant pair.
        split: the BEIR qrels split; ``test`` is refused.

    Raises:
        ValueError: a held-out split, a missing file or a malformed line (named with its line number).
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"training data not found: {source}")
    if source.is_dir():
        return _load_beir(source, split)
    return _load_jsonl(source)


def _load_jsonl(path: Path) -> list[TrainingExample]:
    examples: list[TrainingExample] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            query, positive = record.get("query"), record.get("positive")
            for name, value in (("query", query), ("positive", positive)):
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"{path}:{number}: {name!r} must be a non-empty string")
            query, positive = str(query), str(positive)  # checked above
            negatives: Any = record.get("negative")
            if negatives is None:
                negatives = [None]
            elif isinstance(negatives, str):
                negatives = [negatives]
            if not isinstance(negatives, list) or not all(
                isinstance(n, str) and n.strip() or n is None for n in negatives
            ):
                raise ValueError(f"{path}:{number}: 'negative' must be a non-empty string or a list of them")
            examples.extend(TrainingExample(query, positive, negative) for negative in negatives or [None])
    if not examples:
        raise ValueError(f"{path}: no training examples")
    logger.info("read %d training examples from %s", len(examples), path)
    return examples


def _load_beir(folder: Path, split: str) -> list[TrainingExample]:
    if split in HELD_OUT_SPLITS:
        raise ValueError(
            f"refusing to train on the {split!r} split of {folder}: it is held out for evaluation; "
            "train on a train split instead"
        )
    qrels_file = folder / "qrels" / f"{split}.tsv"
    for needed in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file):
        if not needed.is_file():
            raise ValueError(f"{folder} is not a BEIR folder with a {split!r} split: {needed} is missing")
    pairs = [(query_id, doc_id) for query_id, doc_id, score in iter_beir_qrels(qrels_file) if score > 0]
    wanted_queries = {q for q, _ in pairs}
    wanted_docs = {d for _, d in pairs}
    queries = read_beir_queries(folder / "queries.jsonl", ids=wanted_queries)
    docs = {
        r["_id"]: document_text(r.get("title", ""), r.get("text", ""))
        for r in iter_beir_corpus(folder / "corpus.jsonl")
        if r["_id"] in wanted_docs
    }
    examples = [
        TrainingExample(queries[q], docs[d])
        for q, d in pairs
        if q in queries and d in docs and queries[q].strip() and docs[d]
    ]
    if len(examples) < len(pairs):
        logger.warning(
            "%d of %d judged pairs have no query or document text; skipped", len(pairs) - len(examples), len(pairs)
        )
    if not examples:
        raise ValueError(f"{folder}: no usable training pairs in the {split!r} split")
    logger.info("read %d training pairs (%s split) from %s", len(examples), split, folder)
    return examples
