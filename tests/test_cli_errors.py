"""The CLI's error lines: typed library errors get the flag hint from the CLI, and a plain ValueError (which may
be a genuine bug) keeps its traceback for -v. No cluster."""

from __future__ import annotations

import logging

import click
import pytest

from echo_splade.cli._options import run_guarded
from echo_splade.client import ClusterStateError, ConfigurationError, InputError


def _fail(exc: BaseException):
    def action():
        raise exc

    return action


def test_typed_errors_get_the_flag_hint_from_the_cli():
    with pytest.raises(click.ClickException) as out:
        run_guarded(_fail(ConfigurationError("4 CPU encoder actors do not fit; use fewer", option="actors")))
    assert out.value.message == "4 CPU encoder actors do not fit; use fewer (--actors)"
    with pytest.raises(click.ClickException) as out:
        run_guarded(_fail(ClusterStateError("index x does not exist", option="provision", index="x")))
    assert (
        out.value.message
        == "index x does not exist (--no-provision): create it first (`echo-splade provision --index x`)"
    )
    with pytest.raises(click.ClickException) as out:
        run_guarded(_fail(InputError("no such thing")))  # no option: the message alone
    assert out.value.message == "no such thing"
    assert issubclass(InputError, ValueError)  # code catching ValueError keeps working


def test_a_plain_value_error_keeps_its_traceback_for_verbose(caplog):
    def buggy():
        return {}["x"] if False else int("not a number")

    with caplog.at_level(logging.INFO, logger="echo_splade.cli"), pytest.raises(click.ClickException) as out:
        run_guarded(buggy)
    assert "invalid literal for int()" in out.value.message
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.levelno == logging.INFO and "buggy" in caplog.text  # the frame where it happened


def test_a_stopped_ingest_names_resume_in_the_cli():
    from echo_splade.client import ClusterError

    stopped = ClusterError(
        "HTTP 503 -- the job stopped after indexing 3 document(s); run it again with resume=True to finish"
    )
    stopped.option = "resume"
    with pytest.raises(click.ClickException) as out:
        run_guarded(_fail(stopped))
    assert out.value.message.endswith("run it again with resume=True to finish (--resume)")


@pytest.mark.parametrize("name", ["search", "proxy", "eval"])
def test_query_top_k_is_one_option_with_one_meaning(name):
    from echo_splade.cli import cli

    command = cli.commands[name]
    (param,) = [p for p in command.params if p.name == "query_top_k"]
    ctx = click.Context(command)
    assert param.process_value(ctx, "all") is None  # every command: None = as many as the clause limit allows
    assert param.process_value(ctx, "12") == 12 and param.get_default(ctx, call=True) == "64"
    with pytest.raises(click.BadParameter, match="positive integer or 'all', got '0'"):
        param.process_value(ctx, "0")


def test_cluster_errors_and_log_lines_get_their_flags_from_the_cli(tmp_path, caplog):
    import pickle

    from click.testing import CliRunner

    from echo_splade.cli import cli
    from echo_splade.cli._flag_hints import FlagHints
    from echo_splade.cli._options import cluster_error_message
    from echo_splade.client import ClusterError
    from echo_splade.mappings import bulk_load_settings

    analyzer = ClusterError(
        "403 -- name the analyzer", status=403, option="analyzer", context={"choices": ("english", "standard")}
    )
    analyzer = pickle.loads(pickle.dumps(analyzer))  # crosses Ray process boundaries with its option
    assert cluster_error_message(analyzer) == "403 -- name the analyzer (--analyzer english or --analyzer standard)"
    sparse = ClusterError("no such field type (try another)", option="sparse_type", context={"value": "rank_features"})
    assert cluster_error_message(sparse) == "no such field type (try another) (--sparse-type rank_features)"
    # LocalNode says "the elasticsearch engine"; the CLI adds the flag and value
    result = CliRunner().invoke(cli, ["cluster", "start", "--secure", "--home", str(tmp_path), "--port", "9419"])
    assert result.exit_code == 2 and "a secured node needs the elasticsearch engine" in result.output
    assert "(--engine elasticsearch)" in result.output and "--secure needs" not in result.output

    class Unreachable:  # a backend whose restore fails: the settings stay saved, the log line says how to restore
        def __getattr__(self, name):
            raise ClusterError("cluster unreachable")

    with caplog.at_level(logging.ERROR, logger="echo_splade.mappings"), pytest.raises(ClusterError):
        with bulk_load_settings(Unreachable(), "docs"):
            pass
    (record,) = [r for r in caplog.records if "could not restore" in r.getMessage()]
    FlagHints().filter(record)  # once per record, also when the CLI's filter saw it already
    library, command = record.getMessage().split(": `")
    assert "echo-splade" not in library and library.endswith("or restore_settings() once the cluster is reachable")
    assert command == "echo-splade provision --index docs --restore-settings`"
