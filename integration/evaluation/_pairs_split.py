from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Optional, Union

logger = logging.getLogger(__name__)

__all__ = ["PairsSplit"]

_SPACES = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class PairsSplit:
    """Hold out a dev set from question -> answer training pairs, as a BEIR folder plus the remaining train pairs.

    Collections such as ``medquad_train`` and ``pubmedqa_train`` come as JSONL pairs
    (``{"query", "positive"}``) with no dev split. :meth:`write` draws ``dev_size`` pairs (seeded),
    and writes under ``output``:

    - ``corpus.jsonl``, ``queries.jsonl``, ``qrels/dev.tsv``: a BEIR folder that ``echo-splade eval
      --split dev`` reads. The corpus is the held-out answers (an answer shared by several held-out
      questions is one document judged for each), plus up to ``distractors`` answers of other pairs
      so a query has more than its own answers to choose from;
    - ``train_pairs.jsonl``: every other pair whose answer is not in the dev corpus (no leakage), for
      ``echo-splade train --data``.

    Args:
        pairs: the JSONL file of pairs.
        dev_size: how many pairs to hold out.
        distractors: extra corpus documents drawn from the other pairs' answers (not judged, not trained on).
        seed: the draw.
        max_train: keep at most this many train pairs (a seeded random subset; ``None``: all), e.g. to fit
            a CPU head-stage budget.
    """

    pairs: Path
    dev_size: int = 1000
    distractors: int = 0
    seed: int = 0
    max_train: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", Path(self.pairs))
        if self.dev_size < 1:
            raise ValueError(f"dev_size must be >= 1, got {self.dev_size}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")
        if self.max_train is not None and self.max_train < 1:
            raise ValueError(f"max_train must be >= 1 or None, got {self.max_train}")

    def read(self) -> list[dict[str, str]]:
        """The pairs, in file order; a line without a non-empty ``query`` and ``positive`` raises ``ValueError``."""
        if not self.pairs.is_file():
            raise FileNotFoundError(f"pairs file not found: {self.pairs}")
        rows = []
        with self.pairs.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.pairs}:{number}: not JSON ({exc.msg})") from None
                query, positive = row.get("query"), row.get("positive")
                if (
                    not isinstance(query, str)
                    or not query.strip()
                    or not isinstance(positive, str)
                    or not positive.strip()
                ):
                    raise ValueError(f"{self.pairs}:{number}: needs non-empty 'query' and 'positive' strings")
                rows.append({"query": query, "positive": positive})
        return rows

    def write(self, output: Union[str, os.PathLike]) -> dict[str, int]:
        """Write the dev BEIR folder and the remaining train pairs; return the counts."""
        rows = self.read()
        if self.dev_size >= len(rows):
            raise ValueError(f"dev_size {self.dev_size} leaves no training pairs: {self.pairs} has {len(rows)}")
        order = list(range(len(rows)))
        random.Random(self.seed).shuffle(order)
        dev = sorted(order[: self.dev_size])
        doc_ids: dict[str, str] = {}  # normalised answer text -> doc id
        corpus: list[dict[str, str]] = []

        def doc_id(text: str) -> str:
            key = _SPACES.sub(" ", text).strip().lower()
            if key not in doc_ids:
                doc_ids[key] = f"d{len(doc_ids)}"
                corpus.append({"_id": doc_ids[key], "title": "", "text": text})
            return doc_ids[key]

        queries, qrels = [], []
        for number, i in enumerate(dev):
            qid = f"q{number}"
            queries.append({"_id": qid, "text": rows[i]["query"]})
            qrels.append((qid, doc_id(rows[i]["positive"])))

        def key(i: int) -> str:
            return _SPACES.sub(" ", rows[i]["positive"]).strip().lower()

        rest = [i for i in order[self.dev_size :] if key(i) not in doc_ids]
        distractors = 0
        for i in rest:
            if distractors >= self.distractors:
                break
            if key(i) not in doc_ids:
                doc_id(rows[i]["positive"])
                distractors += 1
        # no train pair may have an answer that is in the corpus (held out or distractor)
        train = [i for i in rest if key(i) not in doc_ids]  # in the seeded order
        leaked = len(rows) - self.dev_size - len(train)
        train = sorted(train[: self.max_train] if self.max_train is not None else train)
        target = Path(output)
        (target / "qrels").mkdir(parents=True, exist_ok=True)
        _write_jsonl(target / "corpus.jsonl", corpus)
        _write_jsonl(target / "queries.jsonl", queries)
        with (target / "qrels" / "dev.tsv").open("w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            handle.writelines(f"{q}\t{d}\t1\n" for q, d in qrels)
        _write_jsonl(target / "train_pairs.jsonl", [rows[i] for i in train])
        counts = {
            "pairs": len(rows),
            "dev_queries": len(queries),
            "corpus": len(corpus),
            "distractors": distractors,
            "train_pairs": len(train),
            "dropped": leaked,
            "left_out_by_max_train": len(rows) - self.dev_size - leaked - len(train),
        }
        (target / "SPLIT.json").write_text(
            json.dumps(
                {
                    "source": str(self.pairs),
                    "seed": self.seed,
                    "dev_size": self.dev_size,
                    "max_train": self.max_train,
                    **counts,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        logger.info("split %s: %s", self.pairs, counts)
        return counts


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    scratch = path.with_suffix(".tmp")
    with scratch.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    os.replace(scratch, path)
