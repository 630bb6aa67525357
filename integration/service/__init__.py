"""The encoder service (``echo-splade serve``): Ray Serve + FastAPI, dynamic batching, feature names as
``echo-splade ingest`` stores them; and its wiring into OpenSearch ML Commons (remote model, ``sparse_encoding``
ingest pipeline, ``neural_sparse`` queries).

Ray and torch load only when a service starts (``EncoderService.start``).
"""

from ._elasticsearch_inference import TOKEN_PATH, WEIGHT_PATH, elasticsearch_inference_body
from ._encode_request import KINDS, EncodeRequest, EncodeResponse, Kind, parse_encode_request
from ._encoder_service import APP_NAME, EncoderService, ServiceStartError
from ._ml_commons_setup import ML_SETTINGS, MlCommonsSetup
from ._request_error import RequestError
from ._service_config import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_TEXTS,
    DEFAULT_PORT,
    ServiceConfig,
)

__all__ = [
    "APP_NAME",
    "DEFAULT_BATCH_WAIT_MS",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_TEXTS",
    "DEFAULT_PORT",
    "KINDS",
    "ML_SETTINGS",
    "MlCommonsSetup",
    "EncodeRequest",
    "EncodeResponse",
    "EncoderService",
    "Kind",
    "RequestError",
    "TOKEN_PATH",
    "WEIGHT_PATH",
    "ServiceConfig",
    "ServiceStartError",
    "elasticsearch_inference_body",
    "parse_encode_request",
]
