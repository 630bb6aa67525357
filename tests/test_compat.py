"""One engine version at a time (marker ``compat``, deselected by default): the contract the project claims on
each version it lists as supported, on a REAL node of that version (``bash scripts/compat_matrix.sh`` starts
one node per version, runs this file against it, stops it and prints the table).

The node: ``ECHO_SPLADE_COMPAT_URL``; the engine and version it must run: ``ECHO_SPLADE_COMPAT_ENGINE``,
``ECHO_SPLADE_COMPAT_VERSION`` (so a matrix row can never be measured on another node by mistake).

Per version: the Ray ingest job writes 200 cranfield documents exactly once (settings restored, the engine's
sparse field type); the ``llm``, ``inference-free`` and ``tokens`` modes search it and each hit's score equals
the dot product of the query weights with the stored weights (9 significant bits stored); hybrid (rrf and
weighted) fuses BM25 and sparse; a second index version gets the alias in one swap.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from _ingest_helpers import FAST as INGEST_FAST
from _ingest_helpers import corpus_head
from _shared_data import shared_dataset
from _sparse_scores import dot_products, query_weights

pytestmark = pytest.mark.compat

COMPAT_URL = os.environ.get("ECHO_SPLADE_COMPAT_URL", "")
COMPAT_ENGINE = os.environ.get("ECHO_SPLADE_COMPAT_ENGINE", "")
COMPAT_VERSION = os.environ.get("ECHO_SPLADE_COMPAT_VERSION", "")
DOCS = 200
# The Ray job's fast settings (first 64 tokens, one torch thread), 100 records per read block.
FAST = {**INGEST_FAST, "block_rows": 100}
BITS9 = 2**-8  # 9 significant bits stored per weight
QUERIES = (
    "what similarity laws must be obeyed when constructing aeroelastic models",
    "heat transfer in boundary layers",
)


@pytest.fixture(scope="module")
def compat_backend():
    from echo_splade.client import ClusterError, ConnectionConfig, connect

    if not (COMPAT_URL and COMPAT_ENGINE and COMPAT_VERSION):
        pytest.fail(
            "set ECHO_SPLADE_COMPAT_URL, ECHO_SPLADE_COMPAT_ENGINE and ECHO_SPLADE_COMPAT_VERSION "
            "(bash scripts/compat_matrix.sh does)",
            pytrace=False,
        )
    config = ConnectionConfig(urls=(COMPAT_URL,), timeout=60)
    try:
        backend = connect(config)
        backend.health(wait_for_status="yellow", timeout="30s")
    except ClusterError as exc:
        pytest.fail(f"the compat node at {COMPAT_URL} is not up: {exc}", pytrace=False)
    assert backend.version_string == f"{COMPAT_ENGINE} {COMPAT_VERSION}"
    yield backend, config
    backend.close()


def _corpus_head(folder: Path, n: int) -> Path:
    return corpus_head(shared_dataset("cranfield") / "corpus.jsonl", folder / "head.jsonl", n)


def _expected_sparse_type(engine: str, version: tuple) -> str:
    return "sparse_vector" if engine == "elasticsearch" and tuple(version[:2]) >= (8, 11) else "rank_features"


@pytest.fixture(scope="module")
def ingested(compat_backend, ray_session, tmp_path_factory):
    """The alias ``t-compat-*`` with cranfield ids 1..200, ingested by the Ray job; yields (alias, report, corpus)."""
    from echo_splade.ingest import IngestJob

    backend, config = compat_backend
    folder = tmp_path_factory.mktemp("compat")
    corpus = _corpus_head(folder, DOCS)
    alias = f"t-compat-{uuid.uuid4().hex[:8]}"
    report = IngestJob(corpus, alias, config, report_path=folder / "report.json", **FAST).run()
    yield alias, report, corpus
    found = backend.request("GET", f"/_cat/indices/{alias}*", params={"format": "json", "h": "index"})
    for row in found:
        backend.request("DELETE", f"/{row['index']}", params={"ignore_unavailable": True})


@pytest.fixture(scope="module")
def stored(compat_backend, ingested):
    """``{doc id: stored features}`` of every ingested document (read back from ``_source``)."""
    backend, _ = compat_backend
    ids = [str(i) for i in range(1, DOCS + 1)]
    docs = backend.request("POST", f"/{ingested[0]}/_mget", body={"ids": ids}, params={"_source_includes": "sparse"})
    return {d["_id"]: d["_source"]["sparse"] for d in docs["docs"] if d.get("found")}


def test_the_ray_job_ingests_200_documents_exactly_once_with_the_engines_sparse_field(compat_backend, ingested, stored):
    from echo_splade.mappings import BULK_LOAD_META_KEY

    backend, _ = compat_backend
    alias, report, _ = ingested
    assert (report.status, report.read, report.indexed, report.dead_lettered) == ("completed", DOCS, DOCS, 0)
    assert backend.count(alias) == DOCS and len(stored) == DOCS
    (physical,) = backend.get_settings(alias)
    mapping = backend.get_mapping(alias)[physical]["mappings"]
    assert mapping["properties"]["sparse"]["type"] == _expected_sparse_type(backend.engine, backend.version)
    assert BULK_LOAD_META_KEY not in mapping.get("_meta", {})
    settings = backend.get_settings(alias)[physical]["settings"]
    assert settings.get("index.refresh_interval") in (None, "1s")
    assert all(feats and all(w > 0 for w in feats.values()) for feats in stored.values())


def _text_of_stored_tokens(stored: dict, encoder, doc_id: str, n: int = 8) -> str:
    """A query text made of the vocabulary tokens behind document ``doc_id``'s ``n`` heaviest stored features:
    tiny-mistral is random, its expansions rarely hold the words of a real query, and inference-free/tokens
    queries only match stored features."""
    from echo_splade.mappings import token_to_feature

    by_feature = {token_to_feature(t): t for t in encoder.tokenizer.get_vocab()}
    feats = sorted(stored[doc_id], key=lambda f: -stored[doc_id][f])
    tokens = [by_feature[f] for f in feats if f in by_feature and by_feature[f].startswith("\u2581")][:n]
    return encoder.tokenizer.convert_tokens_to_string(tokens).strip()


@pytest.mark.parametrize("mode", ["llm", "inference-free", "tokens"])
def test_each_mode_scores_equal_the_dot_product_of_query_and_stored_weights(
    compat_backend, ingested, stored, tiny_model, mode
):
    from echo_splade.connector import SparseRetriever, uses_term_clauses

    backend, _ = compat_backend
    alias = ingested[0]
    retriever = SparseRetriever(backend, alias, encoder=tiny_model if mode == "llm" else None, mode=mode)
    sparse_type = _expected_sparse_type(backend.engine, backend.version)
    # Elasticsearch 8.11-8.14 has the sparse_vector field but not its query: term clauses weighted by boosts
    assert uses_term_clauses(backend, sparse_type) == (
        backend.engine == "elasticsearch" and (8, 11) <= tuple(backend.version[:2]) < (8, 15)
    )
    checked = 0
    for text in (
        QUERIES[0],
        _text_of_stored_tokens(stored, tiny_model, "1"),
        _text_of_stored_tokens(stored, tiny_model, "7"),
    ):
        query: object = text
        if mode == "tokens":  # the caller's {vocabulary token: weight}: the text's own tokens
            tokens = tiny_model.tokenizer.tokenize(text)
            query = {t: 1.0 + i / len(tokens) for i, t in enumerate(tokens)}
        weights = query_weights(retriever.build_query(query))
        assert weights, f"{mode}: no sparse clause in the query body"
        hits = retriever.search(query, k=20)
        assert hits, f"{mode}: no hits for {query!r}"
        expected = dot_products(weights, {hit.id: stored[hit.id] for hit in hits})
        for hit in hits:
            assert hit.score == pytest.approx(expected[hit.id], rel=BITS9), (mode, hit.id)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_hybrid_fuses_bm25_and_sparse(compat_backend, ingested, tiny_model, method):
    from echo_splade.connector import SparseRetriever

    backend, _ = compat_backend
    retriever = SparseRetriever(backend, ingested[0], encoder=tiny_model, mode="llm")
    hits = retriever.search(QUERIES[1], k=10, hybrid=method)
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert any("bm25" in h.components for h in hits) and all(h.components for h in hits)
    single = retriever.build_query(QUERIES[1], hybrid=method)
    assert backend.search(ingested[0], single)["hits"]["hits"]


def test_a_new_index_version_gets_the_alias_in_one_swap(compat_backend, ingested, tiny_model):
    import json

    from echo_splade.connector import SparseRetriever
    from echo_splade.mappings import IndexSpec, provision, read_index_meta

    backend, _ = compat_backend
    alias = ingested[0]
    meta = read_index_meta(backend, alias)  # the job's model and revision (its 64-token window included)
    spec = IndexSpec.for_model(
        alias, meta["model"], meta["model_rev"], {"echo_templates": meta.get("echo_templates") or {}}
    )
    before = list(backend.get_settings(alias))
    plan = provision(backend, spec, new_version=True)
    assert plan.target not in before and list(backend.get_settings(alias)) == before
    # the first 50 documents copied into the new version (the ingest path is the first test's)
    ids = [str(i) for i in range(1, 51)]
    # the fields named: Elasticsearch 9.2 leaves the sparse vector out of a plain _mget's _source (a copy made
    # from it had no sparse field and matched nothing); named, it comes back
    fields = "doc_id,title,text,sparse,model,model_rev"
    docs = backend.request("POST", f"/{alias}/_mget", body={"ids": ids}, params={"_source_includes": fields})["docs"]
    assert all(d["_source"].get("sparse") for d in docs)
    lines = []
    for d in docs:
        lines += [json.dumps({"index": {"_index": plan.target, "_id": d["_id"]}}), json.dumps(d["_source"])]
    assert not backend.bulk(lines, refresh="true").get("errors")
    swapped = provision(backend, spec, swap=True)
    assert swapped.target == plan.target and list(backend.get_settings(alias)) == [plan.target]
    assert backend.count(alias) == 50
    hits = SparseRetriever(backend, alias, encoder=tiny_model).search(QUERIES[0], k=5)
    assert hits and all(h.id in ids for h in hits)
