"""Provisioning and bulk-load settings against the real nodes: the contract tests run on both engines
(``engine_backend``: OpenSearch with ``rank_features``, Elasticsearch with ``sparse_vector``); version rules
and bodies without a cluster."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from echo_splade.client import Backend, ClusterError, ClusterStateError
from echo_splade.mappings import (
    BULK_LOAD_META_KEY,
    FEATURE_SCHEME_VERSION,
    IncompatibleIndexError,
    IndexSpec,
    bulk_load_settings,
    default_sparse_type,
    detect_analyzer,
    provision,
    read_index_meta,
    restore_settings,
    saved_bulk_load_settings,
    update_index_meta,
)
from echo_splade.mappings._provision import _check_engine


def _settings(backend, index):
    (body,) = backend.get_settings(index).values()
    return body["settings"]


def _alias_targets(backend, alias):
    return sorted(backend.get_aliases(alias))


def test_provision_creates_versioned_index_behind_alias(engine_backend, index_name):
    spec = IndexSpec(
        index_name,
        model="tiny-mistral",
        model_rev="abc123",
        echo_templates={"query_prefix": "Query:", "doc_prefix": "Document:"},
    )
    plan = provision(engine_backend, spec)
    # the sparse field type is the engine's own: rank_features on OpenSearch, sparse_vector on Elasticsearch 8.x
    sparse_type = {"opensearch": "rank_features", "elasticsearch": "sparse_vector"}[engine_backend.engine]
    assert plan.executed and plan.actions == ["create"] and plan.sparse_type == sparse_type
    assert plan.target == plan.live == f"{index_name}-v1"
    assert _alias_targets(engine_backend, index_name) == [f"{index_name}-v1"]

    mapping = engine_backend.get_mapping(index_name)[f"{index_name}-v1"]["mappings"]
    types = {field: props["type"] for field, props in mapping["properties"].items()}
    assert types == {
        "title": "text",
        "text": "text",
        "sparse": sparse_type,
        "doc_id": "keyword",
        "model": "keyword",
        "model_rev": "keyword",
    }
    analyzer = detect_analyzer(engine_backend)
    assert mapping["properties"]["text"]["analyzer"] == analyzer == plan.analyzer
    settings = _settings(engine_backend, index_name)
    assert settings["index.number_of_shards"] == "1" and settings["index.number_of_replicas"] == "0"

    meta = read_index_meta(engine_backend, index_name)
    assert meta["model"] == "tiny-mistral" and meta["model_rev"] == "abc123"
    assert meta["feature_scheme_version"] == FEATURE_SCHEME_VERSION
    assert meta["echo_templates"] == {"query_prefix": "Query:", "doc_prefix": "Document:"}
    assert meta["analyzer"] == analyzer and meta["sparse_type"] == sparse_type
    assert provision(engine_backend, IndexSpec(index_name, sparse_type=sparse_type)).noop  # explicit == auto


def test_english_analyzer_is_detected_from_the_modules_loaded(engine_backend):
    nodes = engine_backend.request("GET", "/_nodes/plugins")["nodes"]
    modules = {m["name"] for node in nodes.values() for m in node.get("modules", [])}
    if "analysis-common" in modules:
        analyzed = engine_backend.request("POST", "/_analyze", body={"analyzer": "english", "text": "Running dogs"})
        assert [t["token"] for t in analyzed["tokens"]] == ["run", "dog"]
        assert detect_analyzer(engine_backend) == "english"
    else:
        assert detect_analyzer(engine_backend) == "standard"


def test_reprovision_same_spec_is_noop(engine_backend, index_name):
    spec = IndexSpec(index_name, model="m", model_rev="r1", shards=2)
    provision(engine_backend, spec)
    uuid = _settings(engine_backend, index_name)["index.uuid"]
    again = provision(engine_backend, IndexSpec(index_name, model="m", model_rev="r1", shards=2))
    assert again.noop and again.requests == [] and again.live == f"{index_name}-v1"
    assert "no-op" in again.summary()
    # A spec that leaves the model open is compatible too.
    assert provision(engine_backend, IndexSpec(index_name, shards=2)).noop
    assert _settings(engine_backend, index_name)["index.uuid"] == uuid


def test_missing_model_meta_is_filled_in(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name))
    assert "model" not in read_index_meta(engine_backend, index_name)
    plan = provision(engine_backend, IndexSpec(index_name, model="m", model_rev="r1"))
    assert plan.actions == ["update-meta"]
    meta = read_index_meta(engine_backend, index_name)
    assert meta["model"] == "m" and meta["model_rev"] == "r1"
    assert meta["feature_scheme_version"] == FEATURE_SCHEME_VERSION  # the rest of _meta is kept
    assert provision(engine_backend, IndexSpec(index_name, model="m", model_rev="r1")).noop


def test_incompatible_mapping_is_refused_naming_the_difference(engine_backend, index_name):
    engine_backend.request(
        "PUT",
        f"/{index_name}-v1",
        body={
            "aliases": {index_name: {}},
            "mappings": {"properties": {"sparse": {"type": "float"}, "title": {"type": "text"}}},
        },
    )
    with pytest.raises(IncompatibleIndexError) as info:
        provision(engine_backend, IndexSpec(index_name))
    message = str(info.value)
    assert "field `sparse` is `float`, expected `rank_features` or `sparse_vector`" in message
    assert "field `text` is missing" in message
    assert f"{index_name}-v1" in message and "create a new index version" in message
    assert info.value.option == "new_version"  # the CLI names --new-version
    # nothing was changed
    (kept,) = engine_backend.get_mapping(f"{index_name}-v1").values()
    assert kept["mappings"]["properties"]["sparse"] == {"type": "float"}
    # an explicit sparse type names just that type
    with pytest.raises(IncompatibleIndexError, match="field `sparse` is `float`, expected `rank_features`;"):
        provision(engine_backend, IndexSpec(index_name, sparse_type="rank_features"))


def test_other_model_and_explicit_analyzer_and_shards_are_refused(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name, model="model-a", model_rev="r1", analyzer="standard"))
    with pytest.raises(IncompatibleIndexError, match=r"_meta.model is 'model-a', expected 'model-b'"):
        provision(engine_backend, IndexSpec(index_name, model="model-b"))
    with pytest.raises(IncompatibleIndexError, match="uses analyzer `standard`, expected `english`"):
        provision(engine_backend, IndexSpec(index_name, analyzer="english"))
    with pytest.raises(IncompatibleIndexError, match="number_of_shards is 1, expected 3"):
        provision(engine_backend, IndexSpec(index_name, shards=3))


def _index_doc(backend, index, doc_id, tokens):
    from echo_splade.mappings import sparse_to_features

    backend.request(
        "PUT",
        f"/{index}/_doc/{doc_id}",
        params={"refresh": "true"},
        body={"doc_id": doc_id, "sparse": sparse_to_features(tokens)},
    )


def test_new_version_swap_and_drop_old(engine_backend, index_name):
    v1, v2 = f"{index_name}-v1", f"{index_name}-v2"
    provision(engine_backend, IndexSpec(index_name, model="a"))
    _index_doc(engine_backend, index_name, "old", {"▁x": 1.0})

    plan = provision(engine_backend, IndexSpec(index_name, model="b"), new_version=True)
    assert plan.actions == ["create"] and plan.target == v2 and plan.live == v1
    assert _alias_targets(engine_backend, index_name) == [v1]  # alias stays until --swap
    _index_doc(engine_backend, v2, "new", {"▁x": 1.0})
    assert read_index_meta(engine_backend, v2)["model"] == "b"

    swap = provision(engine_backend, IndexSpec(index_name, model="b"), swap=True)
    assert swap.actions == ["swap"] and swap.live == v2
    aliases_calls = [r for r in swap.requests if r.path == "/_aliases"]
    assert len(swap.requests) == 1 and len(aliases_calls) == 1  # one atomic call
    assert aliases_calls[0].body == {
        "actions": [{"remove": {"index": v1, "alias": index_name}}, {"add": {"index": v2, "alias": index_name}}]
    }
    assert _alias_targets(engine_backend, index_name) == [v2]
    hits = engine_backend.search(index_name, {"query": {"match_all": {}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["new"]
    assert engine_backend.exists(v1)  # kept until --drop-old
    assert provision(engine_backend, IndexSpec(index_name, model="b"), swap=True).noop

    dropped = provision(engine_backend, IndexSpec(index_name, model="b"), drop_old=True)
    assert dropped.dropped == [v1] and dropped.actions == ["drop"]
    assert not engine_backend.exists(v1) and _alias_targets(engine_backend, index_name) == [v2]


def test_new_version_with_swap_in_one_run(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name))
    plan = provision(
        engine_backend, IndexSpec(index_name, analyzer="standard"), new_version=True, swap=True, drop_old=True
    )
    v1, v2 = f"{index_name}-v1", f"{index_name}-v2"
    assert plan.actions == ["create", "swap", "drop"] and plan.live == v2 and plan.dropped == [v1]
    assert _alias_targets(engine_backend, index_name) == [v2] and not engine_backend.exists(v1)
    assert read_index_meta(engine_backend, index_name)["analyzer"] == "standard"


def test_dry_run_sends_nothing_and_shows_exact_bodies(engine_backend, index_name):
    spec = IndexSpec(index_name, model="m", replicas=1)
    plan = provision(engine_backend, spec, dry_run=True)
    assert not plan.executed and not engine_backend.exists(index_name) and not engine_backend.exists(f"{index_name}-v1")
    (request,) = plan.requests
    rendered = request.render()
    first, body = rendered.split("\n", 1)
    assert first == f"PUT /{index_name}-v1"
    concrete = spec.resolved(engine_backend.engine, engine_backend.version)
    assert (
        concrete.sparse_type == plan.sparse_type == default_sparse_type(engine_backend.engine, engine_backend.version)
    )
    assert json.loads(body) == concrete.create_body(plan.analyzer, alias=True)
    assert json.loads(body)["mappings"]["properties"]["sparse"] == {"type": plan.sparse_type}
    assert json.loads(body)["settings"]["index"]["number_of_replicas"] == 1


def test_a_concrete_index_is_checked_not_versioned(engine_backend, index_name):
    # A physical version (the blue/green load target) provisions as a check: no-op when compatible.
    provision(engine_backend, IndexSpec(index_name, model="a"))
    provision(engine_backend, IndexSpec(index_name, model="a"), new_version=True)
    v2 = f"{index_name}-v2"
    plan = provision(engine_backend, IndexSpec(v2, model="a"))
    assert plan.noop and plan.target == v2
    with pytest.raises(IncompatibleIndexError, match="_meta.model is 'a', expected 'b'"):
        provision(engine_backend, IndexSpec(v2, model="b"))
    with pytest.raises(ClusterStateError, match="is a concrete index, not an alias"):
        provision(engine_backend, IndexSpec(v2, model="a"), new_version=True)
    # A hand-made index under the alias name is refused with its differences.
    engine_backend.request("PUT", f"/{index_name}-plain")
    with pytest.raises(IncompatibleIndexError, match="field `sparse` is missing"):
        provision(engine_backend, IndexSpec(f"{index_name}-plain"))


def test_refusal_points_at_a_newer_version_to_swap_to(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name, model="a"))
    provision(engine_backend, IndexSpec(index_name, model="b"), new_version=True)
    with pytest.raises(IncompatibleIndexError, match=f"{index_name}-v2 is newer: swapping moves the alias") as info:
        provision(engine_backend, IndexSpec(index_name, model="b"))
    assert info.value.option == "swap"  # the CLI names --swap


def test_sparse_vector_field_follows_the_engine(engine_backend, index_name):
    spec = IndexSpec(index_name, sparse_type="sparse_vector")
    if engine_backend.engine == "elasticsearch" and engine_backend.version >= (8, 11):
        provision(engine_backend, spec)
        (body,) = engine_backend.get_mapping(index_name).values()
        assert body["mappings"]["properties"]["sparse"]["type"] == "sparse_vector"
        return
    with pytest.raises(ValueError, match="sparse_vector.*Elasticsearch >= 8.11"):
        provision(engine_backend, spec)
    assert not engine_backend.exists(f"{index_name}-v1")


# -- bulk-load settings ------------------------------------------------------------------------


def test_bulk_load_settings_applied_and_restored(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name))
    engine_backend.put_settings(index_name, {"refresh_interval": "7s"})
    with bulk_load_settings(engine_backend, index_name) as previous:
        assert previous == {f"{index_name}-v1": {"index.refresh_interval": "7s", "index.number_of_replicas": "0"}}
        settings = _settings(engine_backend, index_name)
        assert settings["index.refresh_interval"] == "-1" and settings["index.number_of_replicas"] == "0"
        assert read_index_meta(engine_backend, index_name)[BULK_LOAD_META_KEY]["index.refresh_interval"] == "7s"
        _index_doc_no_refresh(engine_backend, index_name)
        assert engine_backend.count(index_name) == 0  # refresh is off
    settings = _settings(engine_backend, index_name)
    assert settings["index.refresh_interval"] == "7s" and settings["index.number_of_replicas"] == "0"
    assert BULK_LOAD_META_KEY not in read_index_meta(engine_backend, index_name)
    assert engine_backend.count(index_name) == 1  # refreshed on exit


def _index_doc_no_refresh(backend, index):
    backend.request("PUT", f"/{index}/_doc/1", body={"doc_id": "1", "sparse": {"a": 1.0}})


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_bulk_load_settings_restored_when_the_body_raises(engine_backend, index_name, error):
    provision(engine_backend, IndexSpec(index_name, replicas=1))  # single node: yellow, still fine
    assert "index.refresh_interval" not in _settings(engine_backend, index_name)
    with pytest.raises(type(error)):
        with bulk_load_settings(engine_backend, index_name):
            _index_doc_no_refresh(engine_backend, index_name)
            raise error
    settings = _settings(engine_backend, index_name)
    assert "index.refresh_interval" not in settings  # unset again, not a guessed default
    assert settings["index.number_of_replicas"] == "1"
    assert saved_bulk_load_settings(engine_backend, index_name) == {}
    assert engine_backend.count(index_name) == 1


def test_settings_of_a_killed_job_are_restored(engine_backend, index_name):
    provision(engine_backend, IndexSpec(index_name, replicas=1))
    killed = bulk_load_settings(engine_backend, index_name)
    killed.__enter__()  # the job dies here: no __exit__
    assert _settings(engine_backend, index_name)["index.refresh_interval"] == "-1"
    saved = {f"{index_name}-v1": {"index.refresh_interval": None, "index.number_of_replicas": "1"}}
    assert saved_bulk_load_settings(engine_backend, index_name) == saved

    # The next run keeps the ORIGINAL values (not the -1/0 the killed job left) and restores them.
    with bulk_load_settings(engine_backend, index_name) as previous:
        assert previous == saved
    settings = _settings(engine_backend, index_name)
    assert "index.refresh_interval" not in settings and settings["index.number_of_replicas"] == "1"

    killed2 = bulk_load_settings(engine_backend, index_name)
    killed2.__enter__()
    assert restore_settings(engine_backend, index_name) == saved
    assert restore_settings(engine_backend, index_name) == {}  # idempotent
    assert _settings(engine_backend, index_name)["index.number_of_replicas"] == "1"


# -- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(connection):
    from echo_splade.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["provision", "--url", connection.urls[0], *args])

    return run


def test_cli_provision_noop_refusal_and_dry_run(backend, index_name, run_cli):
    dry = run_cli("--index", index_name, "--dry-run", "--shards", "2")
    assert dry.exit_code == 0, dry.output
    assert f"PUT /{index_name}-v1" in dry.output and '"number_of_shards": 2' in dry.output
    assert not backend.exists(index_name)

    created = run_cli("--index", index_name)
    assert created.exit_code == 0, created.output
    assert f"created {index_name}-v1" in created.output
    again = run_cli("--index", index_name)
    assert again.exit_code == 0 and again.output.startswith("no-op")

    refused = run_cli("--index", index_name, "--shards", "2")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        f"Error: index {index_name}-v1 is incompatible with the requested spec: number_of_shards is 1, "
        "expected 2 (create a new index version: --new-version)"
    ]

    swapped = run_cli("--index", index_name, "--shards", "2", "--new-version", "--swap", "--drop-old")
    assert swapped.exit_code == 0, swapped.output
    assert _alias_targets(backend, index_name) == [f"{index_name}-v2"]
    assert not backend.exists(f"{index_name}-v1")

    nothing = run_cli("--index", index_name, "--restore-settings")
    assert nothing.exit_code == 0 and "nothing to restore" in nothing.output


def test_cli_rejects_sparse_vector_on_opensearch_in_one_line(backend, index_name, run_cli):
    result = run_cli("--index", index_name, "--sparse-type", "sparse_vector")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "needs Elasticsearch >= 8.11" in result.output


# -- Elasticsearch bodies (no cluster: the bodies and the version rules only) ----------------------


def test_sparse_vector_body_for_elasticsearch():
    spec = IndexSpec("docs", model="m", sparse_type="sparse_vector", shards=2, replicas=1)
    body = spec.create_body("english", alias=True)
    assert body["mappings"]["properties"]["sparse"] == {"type": "sparse_vector"}
    assert body["mappings"]["_meta"]["sparse_type"] == "sparse_vector"
    assert body["settings"] == {"index": {"number_of_shards": 2, "number_of_replicas": 1}}
    assert body["aliases"] == {"docs": {}}
    rank_features = IndexSpec("docs", sparse_type="rank_features").create_body("standard")
    assert rank_features["mappings"]["properties"]["sparse"] == {"type": "rank_features"}
    with pytest.raises(ValueError, match="sparse_type 'auto' has no mapping of its own"):
        IndexSpec("docs").create_body("standard")


@pytest.mark.parametrize(
    "engine, version, expected",
    [
        ("opensearch", (2, 19, 6), "rank_features"),
        ("opensearch", (3, 1, 0), "rank_features"),
        ("elasticsearch", (7, 17, 9), "rank_features"),
        ("elasticsearch", (8, 10, 4), "rank_features"),
        ("elasticsearch", (8, 11, 0), "sparse_vector"),
        ("elasticsearch", (9, 1, 2), "sparse_vector"),
    ],
)
def test_auto_sparse_type_follows_engine_and_version(engine, version, expected):
    assert default_sparse_type(engine, version) == expected
    assert IndexSpec("docs").resolved(engine, version).sparse_type == expected
    explicit = IndexSpec("docs", sparse_type="rank_features")
    assert explicit.resolved(engine, version) is explicit  # an explicit type is honoured as given


@pytest.mark.parametrize(
    "engine, number, ok",
    [
        ("elasticsearch", "8.11.0", True),
        ("elasticsearch", "9.1.2", True),
        ("elasticsearch", "8.10.4", False),
        ("elasticsearch", "7.17.9", False),
        ("opensearch", "2.19.1", False),
    ],
)
def test_sparse_vector_engine_rules(engine, number, ok):
    backend = Backend(raw=None, engine=engine, info={"version": {"number": number}})
    spec = IndexSpec("docs", sparse_type="sparse_vector")
    if ok:
        _check_engine(backend, spec)
    else:
        with pytest.raises(ValueError, match="Elasticsearch >= 8.11"):
            _check_engine(backend, spec)
    _check_engine(backend, IndexSpec("docs"))  # rank_features everywhere


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "Docs"}, "invalid index name"),
        ({"name": "_docs"}, "invalid index name"),
        ({"name": "a*b"}, "invalid index name"),
        ({"name": ""}, "non-empty"),
        ({"name": "d", "shards": 0}, "shards must be"),
        ({"name": "d", "replicas": -1}, "replicas must be"),
        ({"name": "d", "sparse_type": "dense"}, "sparse_type must be one of"),
        ({"name": "d", "analyzer": "french"}, "analyzer must be one of"),
        ({"name": "d", "model": ""}, "model must be"),
    ],
)
def test_index_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IndexSpec(**kwargs)


def test_read_index_meta_of_a_missing_index_is_a_404(backend, index_name):
    with pytest.raises(ClusterError) as info:
        read_index_meta(backend, index_name)
    assert info.value.status == 404


def test_update_index_meta_sets_keys_through_the_alias_and_keeps_the_others(backend, index_name):
    provision(backend, IndexSpec(index_name, model="m", model_rev="r1"))
    before = read_index_meta(backend, index_name)
    previous = update_index_meta(backend, index_name, {"doc_pruning": {"top_k": 7, "min_weight": None}})
    assert previous == {f"{index_name}-v1": {"doc_pruning": None}}
    assert read_index_meta(backend, index_name) == {**before, "doc_pruning": {"top_k": 7, "min_weight": None}}
    previous = update_index_meta(backend, index_name, {"doc_pruning": {"top_k": 9, "min_weight": 0.1}})
    assert previous == {f"{index_name}-v1": {"doc_pruning": {"top_k": 7, "min_weight": None}}}
    assert read_index_meta(backend, index_name)["doc_pruning"] == {"top_k": 9, "min_weight": 0.1}
    assert read_index_meta(backend, index_name)["model_rev"] == "r1"


def test_cli_model_option_records_the_encoder(backend, index_name, run_cli, tiny_model):
    result = run_cli("--index", index_name, "--model", "tiny-mistral")
    assert result.exit_code == 0, result.output
    meta = read_index_meta(backend, index_name)
    assert meta["model"] == "tiny-mistral" and meta["model_rev"] == tiny_model.model_rev
    assert meta["echo_templates"]["document_prefix"] == tiny_model.config["document_prefix"]
    assert meta["echo_templates"]["query_separator"] == tiny_model.config["query_separator"]


def test_incompatible_index_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(IncompatibleIndexError("docs-v1", ["field `sparse` is `float`"], "hint")))
    assert error.differences == ["field `sparse` is `float`"] and error.index == "docs-v1"
    assert str(error) == "index docs-v1 is incompatible with the requested spec: field `sparse` is `float` (hint)"
    assert isinstance(error, ClusterStateError) and error.option == "new_version"
    swap = pickle.loads(pickle.dumps(IncompatibleIndexError("docs-v1", ["x"], "docs-v2 is newer", "swap")))
    assert swap.option == "swap" and swap.hint == "docs-v2 is newer"
