"""The Elasticsearch ``custom`` inference service body (8.19+/9.1+, ``sparse_embedding``) for the encoder service.

Elasticsearch substitutes ``${input}`` in ``request`` with the JSON list of texts and reads the answer with
``json_parser.token_path`` / ``weight_path`` (one list of tokens and one of weights per text). echo-splade
encodes documents and queries with different echo templates, so there is one endpoint per kind: use the
document endpoint as ``semantic_text``'s ``inference_id`` (or in an ``inference`` ingest processor) and the
query endpoint as its ``search_inference_id`` (or in a ``sparse_vector`` query's ``inference_id``).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ._encode_request import KINDS

TOKEN_PATH = "$.embeddings[*].embedding[*].token"
WEIGHT_PATH = "$.embeddings[*].embedding[*].weight"


def elasticsearch_inference_body(service_url: str, kind: str, top_k: Optional[int] = None) -> dict[str, Any]:
    """``PUT _inference/sparse_embedding/<id>`` body calling ``service_url``'s ``/encode`` for ``kind`` texts."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    request: dict[str, Any] = {"texts": "${input}", "kind": kind}
    if top_k is not None:
        request["top_k"] = top_k
    return {
        "service": "custom",
        "service_settings": {
            "url": service_url.rstrip("/") + "/encode",
            "headers": {"Content-Type": "application/json"},
            # ${input} is substituted as a JSON list: unquote the placeholder
            "request": json.dumps(request).replace('"${input}"', "${input}"),
            "response": {"json_parser": {"token_path": TOKEN_PATH, "weight_path": WEIGHT_PATH}},
        },
    }
