"""RunMetrics: ranx's figures on relabelled ids equal the metrics' definitions on the original ids."""

import math

import pytest

from echo_splade.integration.evaluation import RunMetrics


def test_figures_are_the_definitions_of_the_metrics_whatever_the_ids_look_like():
    # binary relevance; ids of several lengths (numba specialised ranx's code on them before relabelling)
    qrels = {"a": {"x": 1, "yy-long-id": 1}, "bbb": {"z": 1}, "c": {"q": 1}}
    run = {"a": {"yy-long-id": 2.0, "w": 1.0}, "bbb": {"w": 2.0, "z": 1.0}}  # "c" answered with nothing
    figures = RunMetrics(qrels).score(run, "s")
    ndcg_a = 1.0 / (1.0 + 1.0 / math.log2(3))  # hit at rank 1 of 2 relevant
    ndcg_bbb = 1.0 / math.log2(3)  # its only relevant document at rank 2
    assert figures["ndcg@10"] == pytest.approx((ndcg_a + ndcg_bbb + 0.0) / 3)
    assert figures["recall@100"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert figures["mrr@10"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_the_same_id_gets_the_same_label_in_judgments_and_in_every_run():
    metrics = RunMetrics({"q": {"d1": 1}})
    assert metrics.score({"q": {"d1": 1.0}}, "first")["mrr@10"] == 1.0
    assert metrics.score({"q": {"d2": 2.0, "d1": 1.0}}, "second")["mrr@10"] == 0.5
    assert metrics.score({"q": {"d2": 1.0}}, "third")["mrr@10"] == 0.0
