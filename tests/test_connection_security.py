"""Offline: how connection secrets are kept out of URLs, reprs, argv and Ray arguments, and how TLS/auth failures
are typed. (The same behaviour against the real secured node: tests/test_secure_cluster.py.)"""

from __future__ import annotations

import logging
import pickle
import ssl

import pytest

from echo_splade.client import (
    AuthenticationError,
    AuthorizationError,
    ClusterError,
    ConfigurationError,
    ConnectionConfig,
    TLSError,
)
from echo_splade.client._backend import _tls_failure, _translate, _warn_insecure, _warned


def test_url_user_info_moves_into_user_and_password():
    config = ConnectionConfig(urls=("https://ann:p%40ss:w0rd@h1:9200", "https://h2:9200"))
    assert config.urls == ("https://h1:9200", "https://h2:9200")
    assert (config.user, config.password) == ("ann", "p@ss:w0rd")
    assert "p@ss" not in repr(config) + str(config) + config.describe()
    with pytest.raises(ConfigurationError, match="names a different user than the given user") as clash:
        ConnectionConfig(urls=("https://ann:x@h:1",), user="bob")
    assert clash.value.option == "user"
    with pytest.raises(ValueError, match="different password"):
        ConnectionConfig(urls=("https://ann:x@h:1",), user="ann", password="y")
    with pytest.raises(ValueError, match="no such file"):
        ConnectionConfig(ca_certs="/nonexistent/ca.crt")
    with pytest.raises(ValueError, match="API key is empty"):
        ConnectionConfig(api_key=" ")


def test_secret_free_copy_reads_its_secrets_from_the_environment(monkeypatch):
    config = ConnectionConfig(urls=("https://h:1",), user="ann", password="Secret-1")
    bare = config.without_secrets()
    assert bare.password is None and bare.secrets_from_env == ("password",)
    assert "Secret-1" not in repr(bare) and b"Secret-1" not in pickle.dumps(bare)
    assert config.secret_environment() == {"ECHO_SPLADE_PASSWORD": "Secret-1"}
    monkeypatch.delenv("ECHO_SPLADE_PASSWORD", raising=False)
    with pytest.raises(ValueError, match=r"\$ECHO_SPLADE_PASSWORD"):
        bare.with_env_secrets()
    monkeypatch.setenv("ECHO_SPLADE_PASSWORD", "Secret-1")
    assert bare.with_env_secrets() == config
    # no secrets: nothing to read, and an unrelated key in the environment is not picked up
    monkeypatch.setenv("ECHO_SPLADE_API_KEY", "unrelated")
    plain = ConnectionConfig()
    assert plain.without_secrets() is plain and plain.with_env_secrets().api_key is None


def test_cli_blanks_secret_options_in_argv():
    from echo_splade.cli._options import _redact_argv

    argv = [
        "echo-splade",
        "ingest",
        "--password",
        "Pw-1",
        "--api-key=K-2",
        "--url",
        "https://u:Pw-3@h:9200",
        "--url=http://u:Pw-4@h",
        "--index",
        "docs",
    ]
    _redact_argv(argv)
    assert not any(s in " ".join(argv) for s in ("Pw-1", "K-2", "Pw-3", "Pw-4"))
    assert argv[-2:] == ["--index", "docs"] and "https://***@h:9200" in argv


class _FakeMeta:
    def __init__(self, status):
        self.status = status


class _FakeApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"ApiError({status})")
        self.meta, self.body = _FakeMeta(status), body


def _body(kind, reason):
    return {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}}


def test_401_403_and_tls_failures_are_typed_and_picklable():
    auth = _translate(_FakeApiError(401, _body("security_exception", "unable to authenticate user [x]")), "GET", "/")
    assert isinstance(auth, AuthenticationError) and "authentication failed (HTTP 401)" in str(auth)
    assert not auth.retryable
    refused = _translate(
        _FakeApiError(
            403, _body("security_exception", "action [indices:data/write/bulk[s]] is unauthorized for user [x]")
        ),
        "POST",
        "/_bulk",
    )
    assert isinstance(refused, AuthorizationError) and refused.action == "indices:data/write/bulk[s]"
    assert "permission denied (HTTP 403)" in str(refused) and not refused.retryable
    again = pickle.loads(pickle.dumps(refused))
    assert type(again) is AuthorizationError and again.action == refused.action

    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    wrapped = ConnectionError("connection failed")
    wrapped.__cause__ = verify
    tls = _translate(wrapped, "GET", "/")
    assert isinstance(tls, TLSError) and tls.unreachable and not tls.retryable
    assert "certificate verify failed: unable to get local issuer certificate" in str(tls)
    assert _tls_failure(ConnectionError("[SSL: WRONG_VERSION_NUMBER] wrong version number")).startswith(
        "the server does not speak TLS"
    )
    plain = _translate(ConnectionError("Connection refused"), "GET", "/")
    assert type(plain) is ClusterError and plain.retryable


def test_insecure_settings_warn_once_per_process(caplog):
    _warned.clear()
    no_verify = ConnectionConfig(urls=("https://127.0.0.1:1",), verify_certs=False)
    clear = ConnectionConfig(urls=("http://127.0.0.1:1",), user="ann", password="x")
    with caplog.at_level(logging.WARNING, logger="echo_splade.client"):
        for _ in range(3):
            _warn_insecure(no_verify)
            _warn_insecure(clear)
        _warn_insecure(ConnectionConfig(urls=("http://127.0.0.1:1",)))  # no credentials: nothing to say
    messages = [r.getMessage() for r in caplog.records]
    assert sum("verification is OFF" in m for m in messages) == 1
    assert sum("clear text" in m for m in messages) == 1
    assert len(messages) == 2
    # the library names its parameters; the CLI's handler filter adds the flags
    from echo_splade.cli._flag_hints import FlagHints

    (off,) = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert off.hint_options == ("verify_certs", "ca_certs")
    FlagHints().filter(off)  # once per record, also when the CLI's filter saw it already
    library, flags = off.getMessage().rsplit(" (", 1)
    assert "--" not in library and "(verify_certs=False)" in library and flags == "--no-verify-certs, --ca-certs)"


def test_the_cli_names_the_flag_of_a_connection_option(tmp_path):
    from click.testing import CliRunner

    from echo_splade.cli import cli

    result = CliRunner().invoke(cli, ["search", "q", "--index", "i", "--url", "https://ann:x@h:1", "--user", "bob"])
    assert result.exit_code == 2, result.output
    assert "names a different user than the given user (--user)" in result.output
    result = CliRunner().invoke(cli, ["search", "q", "--index", "i", "--password", "p"])
    assert "a password was given without a user (--user)" in result.output
