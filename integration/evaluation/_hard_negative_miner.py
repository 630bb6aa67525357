"""Training pairs with BM25 hard negatives mined in the cluster (``echo-splade mine-negatives``)."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

from tqdm.auto import tqdm

from echo_splade.client import Backend, connect
from echo_splade.connector import Hybrid
from echo_splade.encoder import HELD_OUT_SPLITS
from echo_splade.ingest import index_text_only

from ._eval_dataset import EvalDataset

logger = logging.getLogger(__name__)

__all__ = ["HardNegativeMiner"]


class HardNegativeMiner:
    """``{"query", "positive", "negative"}`` training rows for one split of a BEIR folder, negatives from BM25.

    For each judged query, its relevant documents (score >= ``min_score``, best
    first, at most ``max_positives``) become positives; the cluster's BM25 top
    ``depth`` for the query text, minus every document judged for it (at any
    score) and minus the first ``skip`` ranks, is the pool from which
    ``negatives`` hard negatives are drawn (seeded per query, so a rerun writes
    the same file). Rows are what ``echo-splade train --data`` reads (a list of
    negatives gives one example each) plus ``query_id``/``positive_id``/``negative_ids``.

    The corpus must be in ``index`` with its ``title``/``text``; a missing index
    is built from the text alone (:func:`echo_splade.ingest.index_text_only`, no encoding).
    The BM25 query is the connector's (:meth:`Hybrid.bm25_clause`), as in ``echo-splade eval``.

    Args:
        connection: how to reach the cluster.
        index: the alias (or index) holding the dataset's corpus.
        depth: BM25 results per query to draw from.
        skip: top ranks never used (false negatives are likeliest there with sparse judgments).
        negatives: hard negatives per (query, positive) row; fewer when the pool is smaller.
        max_positives: positives per query (``None``: all).
        min_score: the lowest relevance score that counts as a positive.
        seed: seeds the draws.
    """

    def __init__(
        self,
        connection: Any,
        index: str,
        depth: int = 30,
        skip: int = 0,
        negatives: int = 1,
        max_positives: Optional[int] = None,
        min_score: int = 1,
        seed: int = 42,
    ) -> None:
        for name, value, low in (
            ("depth", depth, 1),
            ("skip", skip, 0),
            ("negatives", negatives, 1),
            ("min_score", min_score, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if skip >= depth:
            raise ValueError(f"skip ({skip}) must be smaller than depth ({depth})")
        if max_positives is not None and (not isinstance(max_positives, int) or max_positives < 1):
            raise ValueError(f"max_positives must be an integer >= 1 or None, got {max_positives!r}")
        if not isinstance(index, str) or not index:
            raise ValueError("index must be a non-empty index or alias name")
        self.connection = connection
        self.hybrid = Hybrid()
        self._backend: Optional[Backend] = None
        self.index = index
        self.depth = depth
        self.skip = skip
        self.negatives = negatives
        self.max_positives = max_positives
        self.min_score = min_score
        self.seed = seed

    @property
    def backend(self) -> Any:
        """The cluster connection, opened on first use."""
        if self._backend is None:
            self._backend = connect(self.connection)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def ensure_index(self, dataset: EvalDataset) -> bool:
        """Index the dataset's text (no encoding) unless ``index`` exists; ``True`` when it built it."""
        if self.backend.exists(self.index):
            return False
        index_text_only(self.backend, self.index, dataset.path, format="beir")
        return True

    def mine(self, dataset: EvalDataset, progress: bool = False) -> Iterator[dict]:
        """Yield the training rows of ``dataset`` (its split must not be a held-out one)."""
        if dataset.split in HELD_OUT_SPLITS:
            raise ValueError(f"split {dataset.split!r} is held out for evaluation; mine a training split")
        self.ensure_index(dataset)
        corpus = dataset.corpus_texts()
        backend, clause = self.backend, self.hybrid.bm25_clause
        missing = 0
        for qid, text in tqdm(dataset.queries.items(), total=len(dataset), desc="mine", unit="q", disable=not progress):
            judged = dataset.qrels[qid]
            rng = random.Random(f"{self.seed}:{qid}")
            positives = [d for d, s in judged.items() if s >= self.min_score and d in corpus]
            missing += sum(1 for d, s in judged.items() if s >= self.min_score and d not in corpus)
            rng.shuffle(positives)
            positives.sort(key=lambda d: -judged[d])  # stable: best score first, shuffled within a score
            positives = positives[: self.max_positives]
            if not positives:
                continue
            body = {"query": clause(text), "size": self.depth, "_source": False}
            hits = backend.search(self.index, body)["hits"]["hits"]
            pool = [h["_id"] for h in hits[self.skip :] if h["_id"] not in judged and h["_id"] in corpus]
            for positive in positives:
                chosen = rng.sample(pool, min(self.negatives, len(pool)))
                row = {
                    "query": text,
                    "positive": corpus[positive],
                    "query_id": qid,
                    "positive_id": positive,
                    "dataset": dataset.name,
                }
                if chosen:
                    row["negative"] = [corpus[d] for d in chosen]
                    row["negative_ids"] = chosen
                yield row
        if missing:
            logger.warning("%d judged positive(s) are not in the corpus and were skipped", missing)

    def write(self, dataset: EvalDataset, output: Union[str, os.PathLike], progress: bool = False) -> int:
        """Write :meth:`mine`'s rows as JSONL to ``output`` (atomically); return the row count."""
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        rows = 0
        try:
            with scratch.open("w", encoding="utf-8") as handle:
                for row in self.mine(dataset, progress=progress):
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += 1
            os.replace(scratch, target)
        finally:
            scratch.unlink(missing_ok=True)
        logger.info("wrote %d training rows for %s (%s) to %s", rows, dataset.name, dataset.split, target)
        return rows
