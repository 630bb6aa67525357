"""`echo-splade demo` end to end against the real node, with the tiny model so it runs fast."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from echo_splade.cli import cli
from echo_splade.integration import SAMPLE_CORPUS, SAMPLE_QUERIES, Demo


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sample_corpus_is_well_formed():
    docs = _lines(SAMPLE_CORPUS)
    ids = [d["_id"] for d in docs]
    assert len(docs) >= 50 and len(set(ids)) == len(ids)
    assert all(d["title"].strip() and len(d["text"].split()) >= 25 for d in docs)
    topics = {i.split("-")[0] for i in ids}
    assert {"health", "science", "cooking", "travel", "computing", "history"} <= topics
    queries = _lines(SAMPLE_QUERIES)
    assert len(queries) >= 5
    for q in queries:
        assert q["relevant"] and set(q["relevant"]) <= set(ids), q


def test_demo_cli_end_to_end(index_name, connection, backend):
    result = CliRunner().invoke(cli, [
        "demo", "--model", "tiny-mistral", "--index", index_name, "--no-start", "--url", connection.urls[0],
    ], catch_exceptions=False)
    out = result.output
    assert result.exit_code == 0, out
    for step in ("[1/4] Cluster", "[2/4] Loading the encoder tiny-mistral", "[3/4] Ingesting sample_corpus.jsonl",
                 "[4/4] Example searches"):
        assert step in out
    queries = _lines(SAMPLE_QUERIES)
    assert f"indexed {len(_lines(SAMPLE_CORPUS))}" in out
    assert out.count("  Query: ") == len(queries)
    assert out.count("with sparse,") == len(queries)  # the rank of the expected passage, per query
    assert re.search(r"matched \d+ terms: ", out)  # explanations of matched terms
    assert re.search(r"Expected passage in the top 3: sparse \d/6, BM25 \d/6", out)

    # the explanations printed come from the hits' stored vectors: they add up to the cluster's scores
    from echo_splade.connector import SparseRetriever
    from echo_splade.encoder import TINY_MISTRAL

    retriever = SparseRetriever(backend, index_name, encoder=TINY_MISTRAL, query_top_k=Demo(connection).query_top_k)
    explained = [h for q in queries for h in retriever.search(q["text"], k=3, explain=True) if h.explanation.terms]
    assert explained, "no hit had matching terms"
    for hit in explained:
        # 9-bit stored precision: the cluster's score is the dot product within ~0.5%
        assert abs(hit.explanation.total - hit.score) <= 0.01 * hit.score + 1e-6
