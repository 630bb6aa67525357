"""Local real node, evaluation and demo, in two sub-packages by job.

:mod:`echo_splade.integration.node`: ``LocalNode`` assembles an OpenSearch (or Elasticsearch) node from Maven
Central and runs it on 127.0.0.1 (``LocalCluster``: several of them
forming one cluster); ``echo-splade cluster start|stop|status|install`` is its command line.
:mod:`echo_splade.integration.evaluation`: :class:`Evaluator` runs ``echo-splade eval`` (BM25 / sparse / hybrid
quality and latency in the cluster), :class:`HardNegativeMiner`, :class:`PairsSplit`. :class:`Demo` (here)
runs ``echo-splade demo`` on both. Every public name is re-exported here.
"""

from ._demo import SAMPLE_CORPUS, SAMPLE_QUERIES, Demo, DemoSearch
from .evaluation import (
    METRICS,
    SYSTEMS,
    EvalDataset,
    EvalReport,
    Evaluator,
    HardNegativeMiner,
    PairsSplit,
    SelfHits,
    SystemName,
)
from .node import (
    DEFAULT_ELASTICSEARCH_VERSION,
    DEFAULT_OPENSEARCH_VERSION,
    EngineDistribution,
    JavaHome,
    LocalCluster,
    LocalNode,
    MavenArtifact,
    ModuleSpec,
    NodeStartError,
    default_home,
)

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
