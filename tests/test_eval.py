"""`echo-splade eval` on a tiny BEIR folder against the real node (tiny-mistral), plus its offline parts."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from echo_splade.cli import cli
from echo_splade.client import ClusterStateError
from echo_splade.ingest import DEFAULT_DOC_TOP_K
from echo_splade.integration import METRICS, SYSTEMS, EvalDataset, EvalReport, Evaluator

# Ten documents on unrelated topics; each "easy" query repeats its document's rare words,
# so BM25 must rank it first. "arg-*" documents are also queries (ArguAna style): each one's
# relevant document is its counter-argument, which shares many of its words.
DOCS = {
    "volcano": ("Volcanic eruptions", "Magma rises through the crust and erupts as lava, ash and volcanic gas."),
    "sourdough": (
        "Sourdough starter",
        "A sourdough starter ferments flour and water with wild yeast and lactobacilli.",
    ),
    "penguins": ("Emperor penguins", "Emperor penguins huddle through the Antarctic winter while males incubate eggs."),
    "compiler": (
        "Compilers",
        "A compiler translates source code into machine instructions after parsing and optimisation.",
    ),
    "tulips": ("Tulip mania", "Dutch tulip bulbs reached absurd prices in 1637 before the speculative bubble burst."),
    "glacier": ("Glaciers", "Glaciers carve valleys as compacted snow turns into flowing ice under its own weight."),
    "arg-school-uniforms": (
        "",
        "School uniforms reduce bullying because pupils cannot compete over expensive clothes.",
    ),
    "counter-school-uniforms": (
        "",
        "Bullying over clothes continues despite school uniforms; pupils compete over expensive shoes and bags.",
    ),
    "arg-nuclear-power": ("", "Nuclear power stations emit almost no carbon and keep the lights on when wind is calm."),
    "counter-nuclear-power": (
        "",
        "Nuclear power stations are slow to build, so carbon savings arrive too late; storage can cover calm wind.",
    ),
}
EASY = {
    "q1": ("magma lava eruption volcanic ash", "volcano"),
    "q2": ("sourdough starter wild yeast lactobacilli", "sourdough"),
    "q3": ("emperor penguins antarctic huddle", "penguins"),
    "q4": ("compiler parsing machine instructions", "compiler"),
    "q5": ("tulip bulbs speculative bubble 1637", "tulips"),
    "q6": ("glaciers carve valleys ice", "glacier"),
}
ARGS = {"arg-school-uniforms": "counter-school-uniforms", "arg-nuclear-power": "counter-nuclear-power"}
# Graded judgments, several per query (a "graded" split): nDCG's gains and ideal ordering matter here.
GRADED = {
    "q1": {"volcano": 2, "glacier": 1},
    "q3": {"glacier": 2, "penguins": 1, "tulips": 0},
    "q4": {"compiler": 2, "sourdough": 1, "tulips": 1},
    "q6": {"volcano": 1, "penguins": 1},  # not the passage the query names: its first relevant hit is lower
}


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinybeir")
    with open(root / "corpus.jsonl", "w") as fh:
        for doc_id, (title, text) in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for qid, (text, _) in EASY.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        for qid in ARGS:
            fh.write(json.dumps({"_id": qid, "text": DOCS[qid][1]}) + "\n")
    (root / "qrels").mkdir()
    with open(root / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, (_, doc_id) in EASY.items():
            fh.write(f"{qid}\t{doc_id}\t1\n")
    with open(root / "qrels" / "graded.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in GRADED.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    with open(root / "qrels" / "args.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, doc_id in ARGS.items():
            fh.write(f"{qid}\t{doc_id}\t1\n")
    return root


# -- offline -------------------------------------------------------------------------------------
def test_dataset_reads_judged_queries_only(beir_dir):
    data = EvalDataset(beir_dir, split="test")
    assert list(data.queries) == list(EASY)
    assert data.qrels["q3"] == {"penguins": 1}
    assert len(EvalDataset(beir_dir, split="test", max_queries=2)) == 2
    assert not data.detect_self_hits()
    assert EvalDataset(beir_dir, split="args").detect_self_hits()


def test_dataset_errors_name_the_problem(beir_dir, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no qrels for split 'dev'.*available splits: \['args', 'graded', 'test'\]"
    ):
        EvalDataset(beir_dir, split="dev")
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        EvalDataset(tmp_path)
    with pytest.raises(ValueError, match="max_queries must be >= 1"):
        EvalDataset(beir_dir, max_queries=0)


def test_cranfield_style_shared_ids_are_not_self_hits(tmp_path):
    """Query ids that are also doc ids (Cranfield numbers both from 1) do not trigger self-hit removal."""
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": str(i), "title": "", "text": f"document number {i} about wings"}) + "\n"
            for i in range(1, 4)
        )
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "what about wings"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t2\t1\n")
    assert not EvalDataset(tmp_path).detect_self_hits()


def test_evaluator_validates_its_options():
    with pytest.raises(ValueError, match="systems must be a non-empty selection of"):
        Evaluator(None, "x", systems=["bm25", "splade"])
    with pytest.raises(ValueError, match="self_hits must be one of"):
        Evaluator(None, "x", systems=["bm25"], self_hits="maybe")
    with pytest.raises(ValueError, match="depth must be an integer >= 10"):
        Evaluator(None, "x", systems=["bm25"], depth=5)
    assert Evaluator(None, "x", systems=["bm25"]).model is None  # BM25 alone needs no model


def test_report_table_and_plot(tmp_path):
    report = EvalReport(
        systems={
            "bm25": {"ndcg@10": 0.67, "recall@100": 0.9, "mrr@10": 0.63, "p50_ms": 4.0},
            "hybrid": {"ndcg@10": 0.7, "recall@100": 0.93, "mrr@10": 0.66, "p50_ms": 45.0},
        },
        config={"dataset_name": "x", "split": "test", "num_queries": 3, "model": "m"},
    )
    table = report.format_table().splitlines()
    assert table[0].split() == ["system", *METRICS, "p50_ms"]
    assert table[2].split() == ["bm25", "0.6700", "0.9000", "0.6300", "4.0"]
    png = report.save_plot(tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert EvalReport.load(report.save(tmp_path / "r.json")).to_dict() == report.to_dict()


# -- against the real node -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_run(beir_dir, module_index_name, connection, ray_session, tmp_path_factory):
    """One `echo-splade eval` over every system: provisions and ingests the tiny folder (tiny-mistral) first."""
    out = tmp_path_factory.mktemp("eval-out")
    report_path, plot_path = out / "report.json", out / "plot.png"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--dataset",
            str(beir_dir),
            "--index",
            module_index_name,
            "--model",
            "tiny-mistral",
            "--report",
            str(report_path),
            "--plot",
            str(plot_path),
            "--no-progress",
            "--url",
            connection.urls[0],
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output, json.loads(report_path.read_text()), plot_path


def test_eval_cli_report_has_every_system_and_the_configuration(cli_run):
    output, report, plot_path = cli_run
    assert set(report) == {"systems", "config"}
    assert list(report["systems"]) == list(SYSTEMS)
    for name, figures in report["systems"].items():
        assert set(figures) == {"ndcg@10", "recall@100", "mrr@10", "p50_ms"}, name
        assert all(0.0 <= figures[m] <= 1.0 for m in METRICS), (name, figures)
        assert figures["p50_ms"] > 0 and math.isfinite(figures["p50_ms"])
        assert name in output
    # every easy query names its document's rare words: BM25 must put it first
    assert report["systems"]["bm25"] == {**report["systems"]["bm25"], "ndcg@10": 1.0, "mrr@10": 1.0, "recall@100": 1.0}
    config = report["config"]
    assert config["model"] == "tiny-mistral" and config["model_rev"] == config["index_model_rev"]
    assert config["analyzer"] == {"title": "english", "text": "english"}
    assert config["engine"].startswith(("opensearch", "elasticsearch"))
    assert config["num_queries"] == len(EASY) and config["self_hits"]["dropped"] is False
    assert config["ingest"]["indexed"] == config["num_docs"] == len(DOCS)
    assert config["pruning"]["doc"] == {"top_k": DEFAULT_DOC_TOP_K, "min_weight": None, "mass": None}
    assert config["doc_precision"] == {"dtype": "float32", "quantize": None, "smooth": None}
    assert config["templates"]["query_prefix"] == "Query:"
    assert config["failed_queries"] == {name: 0 for name in SYSTEMS}
    assert plot_path.read_bytes()[:4] == b"\x89PNG"


# -- an independent computation of the sparse and hybrid figures -----------------------------------
def _ndcg_at_10(ranked: list[str], judged: dict[str, int]) -> float:
    """nDCG@10 with linear gains (trec_eval's and BEIR's: gain = grade, discount log2(rank + 1))."""
    dcg = sum(judged.get(d, 0) / math.log2(rank + 2) for rank, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _mrr_at_10(ranked: list[str], judged: dict[str, int]) -> float:
    return next((1.0 / (rank + 1) for rank, d in enumerate(ranked[:10]) if judged.get(d, 0) > 0), 0.0)


def _recall_at_100(ranked: list[str], judged: dict[str, int]) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:100])) / len(relevant)


def _figures(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean of each metric over the judged queries (a query without results scores 0)."""
    per_metric = {"ndcg@10": _ndcg_at_10, "recall@100": _recall_at_100, "mrr@10": _mrr_at_10}
    return {
        m: sum(f(rankings.get(q, []), judged) for q, judged in qrels.items()) / len(qrels)
        for m, f in per_metric.items()
    }


def _ranking(scores: dict[str, float], judged: dict[str, int], eps: float) -> list[str]:
    """Ids by descending score; the metrics must not depend on how the cluster breaks a near-tie, so two
    neighbours of different grades within ``eps`` (relative) fail the test as undecidable."""
    ranked = sorted(scores, key=lambda d: (-scores[d], d))
    for a, b in zip(ranked[:11], ranked[1:11]):
        if judged.get(a, 0) != judged.get(b, 0):
            gap = abs(scores[a] - scores[b])
            assert gap > eps * max(abs(scores[a]), abs(scores[b])), f"near-tie of {a} and {b}: {scores[a]} {scores[b]}"
    return ranked


def _independent_figures(backend, index, dataset, tiny_model, config) -> dict[str, dict[str, float]]:
    """``sparse`` and ``hybrid`` figures computed here: the exact dot product of the encoder's query vector
    (``query_top_k`` terms) with the stored document vectors as Lucene keeps them (9 significant bits,
    float32 products), ranked; BM25's list from the node fused by min-max-normalised weighted sum."""
    from test_rank_feature_scoring import _f32, _nine_bits

    from echo_splade.mappings import token_to_feature

    assert config["hybrid"]["method"] == "weighted" and config["self_hits"]["dropped"] is False
    w = config["hybrid"]["sparse_weight"]
    depth, candidates = config["depth"], max(config["depth"], config["hybrid"]["candidates"])
    hits = backend.search(index, {"query": {"match_all": {}}, "size": 1000, "_source": ["sparse"]})["hits"]["hits"]
    stored = {h["_id"]: h["_source"]["sparse"] for h in hits}
    assert len(stored) == len(DOCS)
    rankings = {"sparse": {}, "hybrid": {}}
    for qid, text in dataset.queries.items():
        judged = dataset.qrels[qid]
        (vec,) = tiny_model.encode_queries([text], top_k=config["pruning"]["query_top_k"])
        query = {token_to_feature(t): q for t, q in tiny_model.tokens(vec).items()}
        dot = {
            d: sum(_f32(_f32(q) * _nine_bits(doc[f])) for f, q in query.items() if f in doc)
            for d, doc in stored.items()
        }
        dot = {d: s for d, s in dot.items() if s > 0}
        sparse = _ranking(dot, judged, eps=1e-5)[:candidates]
        rankings["sparse"][qid] = sparse[:depth]
        lexical_query = {"multi_match": {"query": text, "fields": list(config["hybrid"]["fields"])}}
        lexical_hits = backend.search(index, {"query": lexical_query, "size": candidates})["hits"]["hits"]
        lexical = {h["_id"]: h["_score"] for h in lexical_hits}
        fused: dict[str, float] = {}
        for part, weight in ((lexical, 1.0 - w), ({d: dot[d] for d in sparse}, w)):
            lo, hi = min(part.values(), default=0.0), max(part.values(), default=0.0)
            for d, s in part.items():
                fused[d] = fused.get(d, 0.0) + weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)
        rankings["hybrid"][qid] = _ranking(fused, judged, eps=1e-4)[:depth]
    return {system: _figures(r, dataset.qrels) for system, r in rankings.items()}


def test_sparse_and_hybrid_figures_equal_an_independent_computation(
    cli_run, beir_dir, module_index_name, connection, backend, tiny_model
):
    """The report's sparse and hybrid nDCG@10 / Recall@100 / MRR@10 (CLI, binary judgments) and the
    Evaluator's on graded judgments with several relevant documents per query equal the figures computed
    here from the dot product and an own implementation of the metrics and of the weighted fusion."""
    _, report, _ = cli_run
    assert report["config"]["model_rev"] == tiny_model.model_rev  # the vectors computed here are the evaluated ones
    expected = _independent_figures(backend, module_index_name, EvalDataset(beir_dir), tiny_model, report["config"])
    for system in ("sparse", "hybrid"):
        got = {m: report["systems"][system][m] for m in METRICS}
        assert got == pytest.approx(expected[system], abs=1e-4), system

    graded = EvalDataset(beir_dir, split="graded")
    evaluator = Evaluator(connection, module_index_name, systems=["sparse", "hybrid"], encoder=tiny_model)
    try:
        graded_report = evaluator.evaluate(graded)
    finally:
        evaluator.close()
    expected = _independent_figures(backend, module_index_name, graded, tiny_model, graded_report.config)
    # judgments no ranking of these systems satisfies fully (q3 rates glacier above penguins, q6 judges
    # other passages than the one it names): nDCG and MRR strictly inside (0, 1), so a metric that ignored
    # grades, the ideal ordering or the rank of the first relevant hit would not match
    assert all(0 < expected[s][m] < 1 for s in ("sparse", "hybrid") for m in ("ndcg@10", "mrr@10")), expected
    for system in ("sparse", "hybrid"):
        got = {m: graded_report.systems[system][m] for m in METRICS}
        assert got == pytest.approx(expected[system], abs=1e-4), system


def test_self_hits_are_dropped_the_arguana_way(cli_run, beir_dir, module_index_name, connection):
    data = EvalDataset(beir_dir, split="args")
    evaluator = Evaluator(connection, module_index_name, systems=["bm25"])
    try:
        assert evaluator.ensure_index(data) is False  # exists: used as is
        dropped = evaluator.evaluate(data)
    finally:
        evaluator.close()
    kept = Evaluator(connection, module_index_name, systems=["bm25"], self_hits="keep").evaluate(data)
    assert dropped.config["self_hits"] == {"mode": "auto", "dropped": True}
    assert kept.config["self_hits"] == {"mode": "keep", "dropped": False}
    # the query's own text ranks first when kept; removing it puts the counter-argument first
    assert dropped.systems["bm25"]["mrr@10"] == 1.0
    assert kept.systems["bm25"]["mrr@10"] == 0.5


def test_an_index_of_another_model_is_refused(cli_run, beir_dir, module_index_name, connection, tiny_model):
    from echo_splade.encoder import EchoSpladeEncoder

    # same weights, other query template -> another model_rev than the index was built with
    other = EchoSpladeEncoder(tiny_model.model, tiny_model.tokenizer, "tiny-mistral", query_prefix="Question:")
    evaluator = Evaluator(connection, module_index_name, systems=["sparse"], encoder=other)
    with pytest.raises(ValueError, match=r"holds vectors of model 'tiny-mistral' \(model_rev \w+\), but the evaluated"):
        evaluator.ensure_index(EvalDataset(beir_dir))
    evaluator.close()


def test_bm25_only_indexes_text_without_encoding(beir_dir, index_name, engine_backend, engine_connection):
    # on both engines: English analysis on OpenSearch, `standard` on the Elasticsearch node (no analysis-common)
    connection = engine_connection
    data = EvalDataset(beir_dir)
    evaluator = Evaluator(connection, index_name, systems=["bm25"])
    try:
        assert evaluator.ensure_index(data) is True
        report = evaluator.evaluate(data)
    finally:
        evaluator.close()
    assert report.systems["bm25"]["ndcg@10"] == 1.0
    assert report.config["engine"].startswith(engine_backend.engine)
    analyzer = {"opensearch": "english", "elasticsearch": "standard"}[engine_backend.engine]
    assert report.config["analyzer"] == {"title": analyzer, "text": analyzer}
    assert report.config["ingest"]["mode"].startswith("text only") and report.config["ingest"]["indexed"] == len(DOCS)
    assert report.config["index_model"] is None and report.config["pruning"]["doc"] is None
    # no vectors in there: the sparse systems refuse the index instead of scoring zeros
    with pytest.raises(ValueError, match="records no model: it holds no sparse vectors"):
        Evaluator(connection, index_name, systems=["sparse-inference-free"], model="tiny-mistral").ensure_index(data)
    # an existing but empty index (an ingest stopped before its first write): a clear error, not ranx's crash
    engine_backend.request("PUT", f"/{index_name}-empty")
    empty = Evaluator(connection, f"{index_name}-empty", systems=["bm25"])
    try:
        with pytest.raises(ClusterStateError, match="exists but holds no documents"):
            empty.evaluate(data)
    finally:
        empty.close()
        engine_backend.request("DELETE", f"/{index_name}-empty")


# -- hard negatives mined with BM25 in the cluster (`echo-splade mine-negatives`) ----------------
@pytest.fixture
def train_dir(tmp_path):
    """The ten documents, two training queries: each has one positive and one document judged 0
    (it shares the query's words, so BM25 ranks it high, but must never become a negative)."""
    root = tmp_path / "train-beir"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        for doc_id, (title, text) in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    queries = {
        "t1": "do school uniforms stop bullying over expensive clothes, or nuclear power carbon",
        "t2": "nuclear power carbon savings and calm wind, school pupils",
    }
    with open(root / "queries.jsonl", "w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(root / "qrels" / "train.tsv", "w") as fh:
        fh.write(
            "query-id\tcorpus-id\tscore\n"
            "t1\targ-school-uniforms\t1\nt1\tcounter-school-uniforms\t0\n"
            "t2\tcounter-nuclear-power\t2\nt2\targ-nuclear-power\t0\n"
        )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nt1\targ-school-uniforms\t1\n")
    return root


def test_mined_negatives_are_bm25_hits_never_judged(train_dir, index_name, connection, tmp_path):
    from echo_splade.encoder import load_training_examples
    from echo_splade.integration import HardNegativeMiner

    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "mine-negatives",
            "--dataset",
            str(train_dir),
            "--index",
            index_name,
            "--output",
            str(out),
            "--negatives",
            "2",
            "--no-progress",
            "--url",
            connection.urls[0],
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 training rows" in result.output
    rows = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["t1"]["positive_id"] == "arg-school-uniforms" and rows["t2"]["positive_id"] == "counter-nuclear-power"
    assert rows["t1"]["positive"] == DOCS["arg-school-uniforms"][1]  # no title: the text alone
    for qid, judged in (
        ("t1", {"arg-school-uniforms", "counter-school-uniforms"}),
        ("t2", {"counter-nuclear-power", "arg-nuclear-power"}),
    ):
        negatives = rows[qid]["negative_ids"]
        assert len(negatives) == 2 and len(set(negatives)) == 2 and not set(negatives) & judged, negatives
        # BM25 hits of the query: every pool document shares a word with it
        assert set(negatives) <= {
            "arg-school-uniforms",
            "counter-school-uniforms",
            "arg-nuclear-power",
            "counter-nuclear-power",
        }
        assert rows[qid]["negative"] == [document_text_of(d) for d in negatives]
    # what `echo-splade train --data` reads: one example per negative
    examples = load_training_examples(out)
    assert len(examples) == 4 and {e.negative for e in examples} == {
        document_text_of(d) for r in rows.values() for d in r["negative_ids"]
    }
    # seeded: the same file again; the index now exists and is reused
    miner = HardNegativeMiner(connection, index_name, negatives=2)
    try:
        again = tmp_path / "again.jsonl"
        assert miner.write(EvalDataset(train_dir, split="train"), again) == 2
        assert again.read_text() == out.read_text()
        with pytest.raises(ValueError, match="held out"):
            list(miner.mine(EvalDataset(train_dir, split="test")))
    finally:
        miner.close()
    with pytest.raises(ValueError, match="skip"):
        HardNegativeMiner(connection, index_name, depth=5, skip=5)


def document_text_of(doc_id: str) -> str:
    from echo_splade.encoder import document_text

    return document_text(*DOCS[doc_id])
