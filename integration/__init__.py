"""Local real node (download, start/stop), evaluation and demo.

``LocalNode`` assembles an OpenSearch (or Elasticsearch) node from Maven Central and runs it on 127.0.0.1;
``echo-splade cluster start|stop|status|install`` is its command line.
"""

from ._engine_distribution import (
    DEFAULT_ELASTICSEARCH_VERSION,
    DEFAULT_OPENSEARCH_VERSION,
    EngineDistribution,
    ModuleSpec,
)
from ._java_home import JavaHome
from ._local_node import LocalNode, NodeStartError, default_home
from ._maven_artifact import MavenArtifact

__all__ = [
    "DEFAULT_ELASTICSEARCH_VERSION",
    "DEFAULT_OPENSEARCH_VERSION",
    "EngineDistribution",
    "JavaHome",
    "LocalNode",
    "MavenArtifact",
    "ModuleSpec",
    "NodeStartError",
    "default_home",
]

# Evaluation (built alongside; exported when present).
try:
    from ._eval_dataset import EvalDataset
    from ._eval_report import METRICS, SYSTEMS, EvalReport
    from ._evaluator import Evaluator, SelfHits, SystemName

    __all__ += ["EvalDataset", "EvalReport", "Evaluator", "METRICS", "SYSTEMS", "SelfHits", "SystemName"]
except ImportError:  # pragma: no cover - only while the evaluation module is being written
    pass
