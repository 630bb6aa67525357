"""The request/response contract of ``POST /encode`` (pydantic models for the OpenAPI description, and the
validation that turns raw bytes into an :class:`EncodeRequest` or a :class:`RequestError`).

One shape serves both engines:

* OpenSearch ML Commons (remote connector, ``sparse_encoding``): the connector's ``request_body`` is
  ``{"texts": ${parameters.input}, "kind": "document"}`` (the default pre-process function fills
  ``parameters.input`` with the JSON list of texts); the answer's ``response`` list of ``{feature: weight}``
  maps is what neural-search reads (no post-process function needed).
* Elasticsearch ``custom`` inference service (``sparse_embedding``): request ``{"texts": ${input}, ...}``,
  ``json_parser.token_path`` = ``$.embeddings[*].embedding[*].token``, ``weight_path`` =
  ``$.embeddings[*].embedding[*].weight``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from ._request_error import RequestError

Kind = Literal["document", "query"]
KINDS = ("document", "query")


class EncodeRequest(BaseModel):
    """``POST /encode`` body."""

    texts: list[str] = Field(..., description="Texts to encode (1..max_texts, each non-empty).", min_length=1)
    kind: Kind = Field("document", description="'document' (document echo template) or 'query'.")
    top_k: Optional[int] = Field(None, ge=1, description="Keep the K largest weights per text.")
    min_weight: Optional[float] = Field(None, ge=0, description="Drop weights below this.")


class WeightedToken(BaseModel):
    token: str = Field(..., description="The feature name (the key `echo-splade ingest` stores in rank_features).")
    weight: float


class TokenList(BaseModel):
    embedding: list[WeightedToken]


class EncodeResponse(BaseModel):
    """``POST /encode`` answer: one entry per input text, in input order, in two layouts."""

    model: str = Field(..., description="What reloads the encoder (short name or folder).")
    model_rev: str = Field(..., description="The encoder revision `echo-splade ingest` stores per document.")
    feature_scheme: int = Field(..., description="Version of the token -> feature-name scheme.")
    kind: Kind
    response: list[dict[str, float]] = Field(
        ..., description="{feature: weight} per text: the OpenSearch ML Commons sparse_encoding result shape."
    )
    embeddings: list[TokenList] = Field(
        ..., description="[{token, weight}] per text: for Elasticsearch's custom service json_parser paths."
    )


def parse_encode_request(raw: bytes, max_texts: int, max_chars: int) -> EncodeRequest:
    """Validate a raw ``/encode`` body; raise :class:`RequestError` naming what is wrong."""
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None
    if isinstance(data, list):  # a bare list of texts (ML Commons' SageMaker-style request_body "${parameters.input}")
        data = {"texts": data}
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_request", f"the body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"texts", "kind", "top_k", "min_weight"})
    if unknown:
        raise RequestError(
            400, "invalid_request", f"unknown field(s) {unknown}; allowed: texts, kind, top_k, min_weight"
        )
    texts = data.get("texts")
    if texts is None:
        raise RequestError(400, "invalid_request", "missing field 'texts' (a list of strings)")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list):
        raise RequestError(400, "invalid_request", f"'texts' must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise RequestError(400, "empty_input", "'texts' is empty: give at least one text")
    if len(texts) > max_texts:
        raise RequestError(
            413, "too_many_texts", f"{len(texts)} texts in one request; the limit is {max_texts} (split the request)"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, "not_a_string", f"texts[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise RequestError(400, "empty_text", f"texts[{i}] is empty or whitespace only")
        if len(text) > max_chars:
            raise RequestError(413, "text_too_long", f"texts[{i}] has {len(text)} characters; the limit is {max_chars}")
    kind = data.get("kind", "document")
    if kind not in KINDS:
        raise RequestError(400, "invalid_request", f"'kind' must be one of {list(KINDS)}, got {kind!r}")
    top_k = data.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise RequestError(400, "invalid_request", f"'top_k' must be a positive integer or null, got {top_k!r}")
    min_weight = data.get("min_weight")
    if min_weight is not None and (
        not isinstance(min_weight, (int, float))
        or isinstance(min_weight, bool)
        or not math.isfinite(min_weight)
        or min_weight < 0
    ):
        raise RequestError(400, "invalid_request", f"'min_weight' must be a number >= 0 or null, got {min_weight!r}")
    return EncodeRequest(texts=texts, kind=kind, top_k=top_k, min_weight=min_weight)
