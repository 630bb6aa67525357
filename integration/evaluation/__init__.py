"""Evaluation: BEIR datasets in the cluster (BM25 / sparse / hybrid quality and latency), the report and
its plot, BM25 hard-negative mining and the dev split of question -> answer pairs.
"""

from ._eval_dataset import EvalDataset
from ._eval_report import METRICS, SYSTEMS, EvalReport
from ._evaluator import Evaluator, SelfHits, SystemName
from ._hard_negative_miner import HardNegativeMiner
from ._pairs_split import PairsSplit
from ._run_metrics import RunMetrics, warm_up_metrics

__all__ = [
    "METRICS",
    "SYSTEMS",
    "EvalDataset",
    "EvalReport",
    "Evaluator",
    "HardNegativeMiner",
    "PairsSplit",
    "RunMetrics",
    "SelfHits",
    "SystemName",
    "warm_up_metrics",
]
