"""Local real node (download, start/stop), evaluation and demo.

``LocalNode`` assembles an OpenSearch (or Elasticsearch) node from Maven Central and runs it on 127.0.0.1
(``LocalCluster``: several of them forming one cluster);
``echo-splade cluster start|stop|status|install`` is its command line. :class:`Evaluator` runs
``echo-splade eval`` (BM25 / sparse / hybrid quality and latency in the cluster); :class:`Demo` runs ``echo-splade demo``.
"""

from ._engine_distribution import (
    DEFAULT_ELASTICSEARCH_VERSION,
    DEFAULT_OPENSEARCH_VERSION,
    EngineDistribution,
    ModuleSpec,
)
from ._java_home import JavaHome
from ._local_cluster import LocalCluster
from ._local_node import LocalNode, NodeStartError, default_home
from ._maven_artifact import MavenArtifact

__all__ = [
    "DEFAULT_ELASTICSEARCH_VERSION",
    "DEFAULT_OPENSEARCH_VERSION",
    "EngineDistribution",
    "JavaHome",
    "LocalCluster",
    "LocalNode",
    "MavenArtifact",
    "ModuleSpec",
    "NodeStartError",
    "default_home",
]

# Evaluation and the one-command demo.
from ._demo import SAMPLE_CORPUS, SAMPLE_QUERIES, Demo, DemoSearch
from ._eval_dataset import EvalDataset
from ._eval_report import METRICS, SYSTEMS, EvalReport
from ._evaluator import Evaluator, SelfHits, SystemName
from ._hard_negative_miner import HardNegativeMiner
from ._pairs_split import PairsSplit

__all__ += [
    "Demo",
    "DemoSearch",
    "EvalDataset",
    "EvalReport",
    "Evaluator",
    "HardNegativeMiner",
    "METRICS",
    "PairsSplit",
    "SAMPLE_CORPUS",
    "SAMPLE_QUERIES",
    "SYSTEMS",
    "SelfHits",
    "SystemName",
]
