from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Optional, Union

from echo_splade.encoder import document_text, read_beir_qrels, read_beir_queries
from echo_splade.ingest import CorpusReader

logger = logging.getLogger(__name__)

__all__ = ["EvalDataset"]

_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


class EvalDataset:
    """The queries and relevance judgments of one split of a BEIR-layout folder.

    The folder holds ``corpus.jsonl``, ``queries.jsonl`` (``_id``, ``text``) and
    ``qrels/<split>.tsv`` (header ``query-id  corpus-id  score``). Only queries
    judged in the split are kept, in the order of their first judgment (read by
    :func:`echo_splade.encoder.read_beir_qrels`/:func:`~echo_splade.encoder.read_beir_queries`); a
    judgment with score <= 0 counts as not relevant (the metrics library treats
    it so). The corpus is not read here: ingest streams it.

    Args:
        path: the BEIR folder.
        split: the qrels file name without ``.tsv`` (``test``, ``dev``, ``train``).
        max_queries: keep only the first N judged queries (``None``: all).

    Attributes:
        queries: ``{query_id: text}``.
        qrels: ``{query_id: {doc_id: score}}``.
        missing_queries: judged query ids that ``queries.jsonl`` lacks (skipped, logged).
    """

    def __init__(self, path: Union[str, os.PathLike], split: str = "test", max_queries: Optional[int] = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.path}")
        if not split or "/" in split or "\\" in split:
            raise ValueError(f"split must be a qrels file name such as 'test', got {split!r}")
        if max_queries is not None and max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        self.split = split
        self.corpus_path = self.path / "corpus.jsonl"
        if not self.corpus_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a BEIR folder: corpus.jsonl is missing")
        qrels_path = self.path / "qrels" / f"{split}.tsv"
        if not qrels_path.is_file():
            available = (
                sorted(p.stem for p in (self.path / "qrels").glob("*.tsv")) if (self.path / "qrels").is_dir() else []
            )
            raise FileNotFoundError(
                f"no qrels for split {split!r} in {self.path} (qrels/{split}.tsv); "
                f"available splits: {available or 'none'}"
            )
        qrels = read_beir_qrels(qrels_path)
        all_queries = read_beir_queries(self.path / "queries.jsonl")
        self.missing_queries = [q for q in qrels if q not in all_queries]
        if self.missing_queries:
            logger.warning(
                "%d judged query id(s) are not in queries.jsonl and are skipped (e.g. %s)",
                len(self.missing_queries),
                self.missing_queries[:3],
            )
        ids = [q for q in qrels if q in all_queries]
        if not ids:
            raise ValueError(f"{qrels_path} judges no query that queries.jsonl holds")
        if max_queries is not None:
            ids = ids[:max_queries]
        self.queries: dict[str, str] = {q: all_queries[q] for q in ids}
        self.qrels: dict[str, dict[str, int]] = {q: qrels[q] for q in ids}

    def __len__(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        return f"EvalDataset(path={str(self.path)!r}, split={self.split!r}, queries={len(self)})"

    @property
    def name(self) -> str:
        return self.path.name

    def corpus_texts(self) -> dict[str, str]:
        """``{doc_id: text}`` of the whole corpus, read into memory (the encoder's ``document_text`` of title
        and text); bad records are left out. For tools that need the texts by id, e.g. hard-negative mining."""
        return {
            r["doc_id"]: document_text(r["title"], r["text"])
            for r in CorpusReader(self.path, format="beir")
            if not r["reason"]
        }

    def detect_self_hits(self) -> bool:
        """Whether the queries are themselves corpus documents (the ArguAna convention).

        True when most queries whose id is also a document id have the same text
        as that document (title and text, whitespace and case ignored). Matching
        ids alone are not enough: Cranfield numbers both from 1.
        """
        wanted = {qid: _normalise(text) for qid, text in self.queries.items()}
        shared = same = 0
        for record in CorpusReader(self.path, format="beir"):
            query = wanted.get(record["doc_id"])
            if query is None or record["reason"]:
                continue
            shared += 1
            doc = _normalise(record["text"])
            full = _normalise(f"{record['title']} {record['text']}")
            same += query in (doc, full)
        decision = shared > 0 and same * 2 > shared
        logger.info(
            "self-hit check: %d of %d queries share an id with a document, %d of those also its text -> %s",
            shared,
            len(wanted),
            same,
            "drop self-hits" if decision else "keep all hits",
        )
        return decision
