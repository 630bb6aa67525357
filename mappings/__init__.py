"""Index format: the feature-name scheme, index mappings/settings, provisioning, bulk-load settings.

Talks to clusters only through :mod:`echo_splade.client`; no torch in here.
"""

from ._feature_names import (
    FEATURE_SCHEME_VERSION,
    FLOAT_MAX,
    FLOAT_MIN_NORMAL,
    MAX_FEATURE_BYTES,
    feature_to_token,
    features_to_sparse,
    sparse_to_features,
    token_to_feature,
)

__all__ = [
    "FEATURE_SCHEME_VERSION",
    "FLOAT_MAX",
    "FLOAT_MIN_NORMAL",
    "MAX_FEATURE_BYTES",
    "feature_to_token",
    "features_to_sparse",
    "sparse_to_features",
    "token_to_feature",
]
