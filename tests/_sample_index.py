"""A small echo-splade index of ``integration/sample_corpus.jsonl`` built without Ray (provision, encode,
one bulk request): what the proxy and search-page tests search."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "integration" / "sample_corpus.jsonl"


def sample_docs() -> list[dict]:
    with open(SAMPLE_CORPUS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def encode_sample(encoder, docs: list[dict], top_k: int = 256) -> list[dict]:
    """``{feature: weight}`` per document (title and text, the ingest job's document text)."""
    from echo_splade.encoder import document_text
    from echo_splade.mappings import sparse_to_features

    vectors = encoder.encode_documents([document_text(d.get("title"), d["text"]) for d in docs], top_k=top_k)
    return [sparse_to_features(encoder.tokens(v)) for v in vectors]


def build_sample_index(backend, alias: str, encoder, docs: list[dict], features: list[dict]) -> None:
    """Provision ``alias`` for ``encoder`` and index ``docs`` with their stored ``features``, refreshed."""
    from echo_splade.mappings import IndexSpec, provision

    provision(backend, IndexSpec.from_encoder(alias, encoder))
    lines = []
    for doc, feats in zip(docs, features):
        lines.append(json.dumps({"index": {"_index": alias, "_id": doc["_id"]}}))
        source = {
            "doc_id": doc["_id"],
            "title": doc.get("title", ""),
            "text": doc["text"],
            "sparse": feats,
            "model": encoder.model_id,
            "model_rev": encoder.model_rev,
        }
        lines.append(json.dumps(source, ensure_ascii=False))
    resp = backend.bulk(lines, refresh="true")
    if resp.get("errors"):
        raise RuntimeError(f"indexing the sample failed: {json.dumps(resp)[:500]}")
