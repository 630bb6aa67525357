"""The local real node: download (Maven Central), configure (security, plugins built from ``java/``), start/stop.

``LocalNode`` assembles an OpenSearch (or Elasticsearch) node and runs it on 127.0.0.1;
``echo-splade cluster start|stop|status|install`` is its command line.
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
from ._node_security import ROLE_INDEX_PRIVILEGES, NodeSecurity, NodeSecurityError, role_descriptor, role_name
from ._zip_archive import extract_zip

__all__ = [
    "DEFAULT_ELASTICSEARCH_VERSION",
    "DEFAULT_OPENSEARCH_VERSION",
    "ROLE_INDEX_PRIVILEGES",
    "EngineDistribution",
    "JavaHome",
    "LocalCluster",
    "LocalNode",
    "MavenArtifact",
    "ModuleSpec",
    "NodeSecurity",
    "NodeSecurityError",
    "NodeStartError",
    "default_home",
    "extract_zip",
    "role_descriptor",
    "role_name",
]
