"""Index format: the indexed document (one owner: :func:`document_source`), the feature-name scheme, index mappings/settings, provisioning, bulk-load settings.

Talks to clusters only through :mod:`echo_splade.client`; no torch in here.
"""

from ._bulk_load import BULK_LOAD_META_KEY, bulk_load_settings, restore_settings, saved_bulk_load_settings
from ._document import (
    DOCUMENT_FIELDS,
    KEYWORD_FIELDS,
    MODEL_FIELD,
    MODEL_REV_FIELD,
    SPARSE_FIELD,
    TEXT_FIELDS,
    DocumentSource,
    document_source,
    model_name,
)
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
from ._incompatible_index_error import IncompatibleIndexError
from ._index_meta import DOC_PRECISION_META_KEY, DOC_PRUNING_META_KEY, read_index_meta, update_index_meta
from ._index_spec import ANALYZERS, SPARSE_TYPES, IndexSpec, default_sparse_type
from ._provision import detect_analyzer, plan_provision, provision
from ._provision_plan import PlannedRequest, ProvisionPlan

__all__ = [
    "ANALYZERS",
    "BULK_LOAD_META_KEY",
    "DOC_PRECISION_META_KEY",
    "DOC_PRUNING_META_KEY",
    "DOCUMENT_FIELDS",
    "KEYWORD_FIELDS",
    "MODEL_FIELD",
    "MODEL_REV_FIELD",
    "SPARSE_FIELD",
    "TEXT_FIELDS",
    "DocumentSource",
    "document_source",
    "model_name",
    "FEATURE_SCHEME_VERSION",
    "FLOAT_MAX",
    "FLOAT_MIN_NORMAL",
    "MAX_FEATURE_BYTES",
    "SPARSE_TYPES",
    "IncompatibleIndexError",
    "IndexSpec",
    "PlannedRequest",
    "ProvisionPlan",
    "bulk_load_settings",
    "default_sparse_type",
    "detect_analyzer",
    "feature_to_token",
    "features_to_sparse",
    "plan_provision",
    "provision",
    "read_index_meta",
    "restore_settings",
    "saved_bulk_load_settings",
    "sparse_to_features",
    "token_to_feature",
    "update_index_meta",
]
