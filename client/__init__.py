"""Engine-neutral cluster access: one small interface over opensearch-py and elasticsearch-py.

Everything that talks to a cluster (``mappings``, ``ingest``, ``connector``,
``integration``) goes through :class:`Backend`, so the same code runs on
OpenSearch and Elasticsearch. No torch in here.
"""

from ._backend import (
    AuthenticationError,
    AuthorizationError,
    Backend,
    ClusterError,
    TLSError,
    check_all_shards,
    connect,
    wrap_client,
)
from ._connection import ConnectionConfig, redact_url
from ._errors import ClusterStateError, ConfigurationError, EchoSpladeValueError, InputError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "Backend",
    "ClusterError",
    "ClusterStateError",
    "ConfigurationError",
    "ConnectionConfig",
    "EchoSpladeValueError",
    "InputError",
    "TLSError",
    "check_all_shards",
    "connect",
    "redact_url",
    "wrap_client",
]
