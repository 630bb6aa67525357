"""Engine-neutral cluster access: one small interface over opensearch-py and elasticsearch-py.

Everything that talks to a cluster (``mappings``, ``ingest``, ``connector``,
``integration``) goes through :class:`Backend`, so the same code runs on
OpenSearch and Elasticsearch. No torch in here.
"""

from ._backend import Backend, ClusterError, connect, wrap_client
from ._connection import ConnectionConfig

__all__ = ["Backend", "ClusterError", "ConnectionConfig", "connect", "wrap_client"]
