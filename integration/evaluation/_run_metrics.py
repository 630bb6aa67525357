"""The retrieval metrics of runs (``ranx``), on ids relabelled so that their machine code compiles once."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ._eval_report import METRICS

logger = logging.getLogger(__name__)

__all__ = ["RunMetrics", "warm_up_metrics"]

#: Every query and document id is handed to ranx as a decimal label of this many digits.
_LABEL_DIGITS = 10


class RunMetrics:
    """:data:`METRICS` of runs against one set of judgments.

    ranx compiles its functions with numba and caches the machine code on disk, but numba specialises it
    on the width of the id strings (numpy ``<U{n}`` arrays): every collection with other id lengths
    compiled anew, ~40 s of CPU (minutes on a busy 2-core machine) at its first evaluation. Ids are
    therefore relabelled to fixed-width decimal labels (``0000000000``, ...), the same label for the same
    id in the judgments and in every run; the metrics do not depend on the names of ids, and scores keep
    their order, so the figures are those of the original ids (only equal scores within a query, which
    :class:`Evaluator`'s runs never hold, would be ordered by label instead of by id).

    ``qrels``: ``{query_id: {doc_id: relevance}}``.
    """

    def __init__(self, qrels: Mapping[str, Mapping[str, Any]]) -> None:
        import ranx  # lazy: heavy (numba)

        self._queries: dict[str, str] = {}
        self._docs: dict[str, str] = {}
        self._qrels = ranx.Qrels(
            {
                self._label(self._queries, q): {self._label(self._docs, d): int(s) for d, s in docs.items()}
                for q, docs in qrels.items()
            }
        )

    @staticmethod
    def _label(labels: dict[str, str], key: str) -> str:
        label = labels.get(key)
        if label is None:
            label = labels[key] = f"{len(labels):0{_LABEL_DIGITS}d}"
        return label

    def score(self, run: Mapping[str, Mapping[str, float]], name: str) -> dict[str, float]:
        """:data:`METRICS` of ``run`` (``{query_id: {doc_id: score}}``); judged queries missing from it count
        as answered with nothing (``make_comparable``)."""
        import ranx

        relabelled = {
            self._label(self._queries, q): {self._label(self._docs, d): float(s) for d, s in hits.items()}
            for q, hits in run.items()
        }
        scores = ranx.evaluate(self._qrels, ranx.Run(relabelled, name=name), list(METRICS), make_comparable=True)
        return {metric: float(scores[metric]) for metric in METRICS}


def warm_up_metrics() -> float:
    """Compile ranx's metrics for :class:`RunMetrics` into its on-disk cache; returns the seconds it took.

    In a new environment the first evaluation would pay for the compilation; ``scripts/setup.sh`` calls
    this once so that every later evaluation, of any collection, loads the cached code.
    """
    started = time.perf_counter()
    metrics = RunMetrics({"q-1": {"d-1": 2, "d-2": 1}, "q-2": {"d-3": 1}, "q-3": {"d-4": 1}})
    metrics.score({"q-1": {"d-2": 3.0, "d-1": 2.0, "d-5": 1.0}, "q-2": {"d-4": 2.0, "d-3": 1.0}}, "warm-up")
    seconds = time.perf_counter() - started
    logger.info("ranx metrics ready in %.1f s", seconds)
    return seconds
