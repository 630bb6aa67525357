"""Security for a local Elasticsearch node: TLS material, the bootstrap superuser, least-privilege roles.

Everything is generated locally, once, in the node's folder (never in the repository)::

    nodes/elasticsearch-9202/
        config/certs/ca.crt, node.crt, node.key    read by the node (HTTPS and transport TLS)
        config/elasticsearch.keystore              holds ``bootstrap.password`` (the ``elastic`` password)
        secrets/                                   mode 0700, not readable by the node's user
            ca.key                                 the local CA's key (0600)
            elastic-password                       the ``elastic`` superuser's password (0600)
            users.json                             passwords of the least-privilege users (0600)

``elastic`` is for setup only (roles, users, API keys). The node starts with
``xpack.security.enabled: true``, HTTPS on, and no anonymous access.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets as _secrets
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)

#: Environment variable that sets the ``elastic`` password (else one is generated once).
ELASTIC_PASSWORD_ENV = "ELASTIC_PASSWORD"
#: The index-name pattern the local secured node's roles are granted on: alias ``secure-NAME``,
#: physical indices ``secure-NAME-v1``, ``-v2``, ...
DEFAULT_ROLE_PATTERN = "secure-*"

#: Index privileges of each least-privilege role, measured on Elasticsearch 8.19 with every command
#: (see README, "Connecting to a secured cluster"); dropping any one of them makes a step of its command
#: fail with a 403. Action names are used where a named privilege would grant more than the command needs.
ROLE_INDEX_PRIVILEGES: dict[str, tuple[str, ...]] = {
    # create NAME-vN with its mapping and settings (both in the create body), point/swap the alias NAME, read
    # aliases, mappings, settings and _meta, add missing _meta keys to an existing version (PUT _mapping)
    "provisioner": ("create_index", "view_index_metadata", "indices:admin/aliases", "indices:admin/mapping/put"),
    # index/read documents (resume reads model_rev); `write` also allows PUT _mapping, which records the
    # bulk-load restore values and the document pruning in _meta; bulk-load settings (refresh_interval,
    # replicas) and their restore; refresh after the load
    "ingest": ("read", "write", "view_index_metadata", "indices:admin/settings/update", "indices:admin/refresh*"),
    # search, _mget, _count, _mapping (index _meta), field caps; nothing that writes
    "search": ("read", "view_index_metadata"),
}
#: Cluster privileges of each role (none: every command works without one).
ROLE_CLUSTER_PRIVILEGES: dict[str, tuple[str, ...]] = {"provisioner": (), "ingest": (), "search": ()}


def role_name(role: str) -> str:
    """``provisioner`` -> ``echo_splade_provisioner`` (the role's name in the cluster)."""
    return f"echo_splade_{role}"


def user_name(role: str) -> str:
    """``provisioner`` -> ``echo-splade-provisioner`` (the user created for the role)."""
    return f"echo-splade-{role}"


def role_descriptor(role: str, pattern: str = DEFAULT_ROLE_PATTERN) -> dict:
    """The role's body for ``PUT /_security/role/<name>`` (also an API key's ``role_descriptors`` entry)."""
    if role not in ROLE_INDEX_PRIVILEGES:
        raise ValueError(f"role must be one of {sorted(ROLE_INDEX_PRIVILEGES)}, got {role!r}")
    if not pattern or any(c.isspace() or c in ',"' for c in pattern):
        raise ValueError(f"invalid index pattern {pattern!r}")
    return {
        "cluster": list(ROLE_CLUSTER_PRIVILEGES[role]),
        "indices": [{"names": [pattern], "privileges": list(ROLE_INDEX_PRIVILEGES[role])}],
    }


class NodeSecurityError(RuntimeError):
    """Generating the node's TLS material or keystore, or setting up its roles, failed."""


class NodeSecurity:
    """The security files of one secured local node and the calls that set it up.

    Args:
        node_dir: the node's folder (``nodes/<engine>-<port>``).
        install_dir: the unpacked server (has ``bin/elasticsearch-certutil`` and ``bin/elasticsearch-keystore``).
    """

    def __init__(self, node_dir: Path, install_dir: Path) -> None:
        self.node_dir = Path(node_dir)
        self.install_dir = Path(install_dir)

    def __repr__(self) -> str:
        return f"NodeSecurity(node_dir={str(self.node_dir)!r})"

    # ----------------------------------------------------------------- paths
    @property
    def certs_dir(self) -> Path:
        return self.node_dir / "config" / "certs"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients pass as ``--ca-certs``."""
        return self.certs_dir / "ca.crt"

    @property
    def secrets_dir(self) -> Path:
        return self.node_dir / "secrets"

    @property
    def password_file(self) -> Path:
        """Mode-0600 file holding the ``elastic`` password."""
        return self.secrets_dir / "elastic-password"

    @property
    def users_file(self) -> Path:
        """Mode-0600 JSON ``{user: password}`` of the least-privilege users."""
        return self.secrets_dir / "users.json"

    @property
    def keystore(self) -> Path:
        return self.node_dir / "config" / "elasticsearch.keystore"

    # ------------------------------------------------------------- settings
    @staticmethod
    def settings() -> dict[str, Any]:
        """Node settings: security on, HTTPS and transport TLS with the local CA, no anonymous access."""
        tls = {"key": "certs/node.key", "certificate": "certs/node.crt", "certificate_authorities": ["certs/ca.crt"]}
        settings: dict[str, Any] = {
            "xpack.security.enabled": True,
            "xpack.security.authc.api_key.enabled": True,
            "xpack.security.http.ssl.enabled": True,
            "xpack.security.transport.ssl.enabled": True,
            "xpack.security.transport.ssl.verification_mode": "certificate",
        }
        for layer in ("http", "transport"):
            settings.update({f"xpack.security.{layer}.ssl.{k}": v for k, v in tls.items()})
        return settings

    # -------------------------------------------------------------- secrets
    def elastic_password(self) -> str:
        """The ``elastic`` password: ``$ELASTIC_PASSWORD``, else the one stored, else a new random one."""
        wanted = os.environ.get(ELASTIC_PASSWORD_ENV)
        if wanted is not None:
            if len(wanted) < 6:
                raise ValueError(f"${ELASTIC_PASSWORD_ENV} must hold at least 6 characters")
            return wanted
        stored = self.stored_password()
        return stored if stored else _secrets.token_urlsafe(18)

    def stored_password(self) -> Optional[str]:
        try:
            return self.password_file.read_text().strip() or None
        except OSError:
            return None

    def user_passwords(self) -> dict[str, str]:
        """``{user: password}`` of the least-privilege users (created once, then kept)."""
        try:
            stored = json.loads(self.users_file.read_text())
        except (OSError, ValueError):
            stored = {}
        users = {
            user_name(role): stored.get(user_name(role)) or _secrets.token_urlsafe(18) for role in ROLE_INDEX_PRIVILEGES
        }
        if users != stored:
            _write_secret(self.users_file, json.dumps(users, indent=2) + "\n")
        return users

    # --------------------------------------------------------------- prepare
    def prepare(self, java_home: Path) -> str:
        """Create what is missing (CA, node certificate, keystore with the bootstrap password); return the
        ``elastic`` password. Runs before every start (cheap once everything exists)."""
        self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        env = {
            **os.environ,
            "ES_JAVA_HOME": str(java_home),
            "JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(self.node_dir / "config"),
        }
        env.pop("JAVA_TOOL_OPTIONS", None)
        if not (
            self.ca_cert.is_file()
            and (self.certs_dir / "node.crt").is_file()
            and (self.certs_dir / "node.key").is_file()
        ):
            self._generate_certificates(env)
        password = self.elastic_password()
        if not self.keystore.is_file() or self.stored_password() != password:
            self._run(
                [str(self.install_dir / "bin" / "elasticsearch-keystore"), "add", "-f", "-x", "bootstrap.password"],
                env,
                stdin=password,
                what="writing the keystore",
            )
            _write_secret(self.password_file, password + "\n")
            logger.info("elastic password written to %s", self.password_file)
        return password

    def _generate_certificates(self, env: Mapping[str, str]) -> None:
        certutil = str(self.install_dir / "bin" / "elasticsearch-certutil")
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.secrets_dir) as tmp:
            work = Path(tmp)
            self._run(
                [certutil, "ca", "--pem", "--silent", "--days", "3650", "--out", str(work / "ca.zip")],
                env,
                what="generating the CA",
            )
            _extract(work / "ca.zip", work)
            self._run(
                [
                    certutil,
                    "cert",
                    "--pem",
                    "--silent",
                    "--days",
                    "3650",
                    "--name",
                    "node",
                    "--ca-cert",
                    str(work / "ca" / "ca.crt"),
                    "--ca-key",
                    str(work / "ca" / "ca.key"),
                    "--ip",
                    "127.0.0.1",
                    "--dns",
                    "localhost",
                    "--out",
                    str(work / "node.zip"),
                ],
                env,
                what="generating the node certificate",
            )
            _extract(work / "node.zip", work)
            shutil.copyfile(work / "ca" / "ca.key", self.secrets_dir / "ca.key")
            os.chmod(self.secrets_dir / "ca.key", 0o600)
            shutil.copyfile(work / "ca" / "ca.crt", self.ca_cert)
            shutil.copyfile(work / "node" / "node.crt", self.certs_dir / "node.crt")
            shutil.copyfile(work / "node" / "node.key", self.certs_dir / "node.key")
            os.chmod(self.certs_dir / "node.key", 0o600)
            os.chmod(self.ca_cert, 0o644)
        logger.info("generated a local CA and node certificate in %s", self.certs_dir)

    @staticmethod
    def _run(command: list[str], env: Mapping[str, str], what: str, stdin: Optional[str] = None) -> None:
        result = subprocess.run(
            command, env=dict(env), input=stdin, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            # the tools never echo the password they read from stdin
            raise NodeSecurityError(
                f"{what} failed ({Path(command[0]).name} exited {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    # ------------------------------------------------------------------ REST
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def auth_header(self, password: Optional[str] = None) -> str:
        password = password if password is not None else (self.stored_password() or "")
        return "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()

    def setup_requests(self, pattern: str = DEFAULT_ROLE_PATTERN) -> list[tuple[str, str, dict]]:
        """Idempotent calls that create the least-privilege roles and one user per role."""
        calls: list[tuple[str, str, dict]] = []
        passwords = self.user_passwords()
        for role in ROLE_INDEX_PRIVILEGES:
            calls.append(("PUT", f"/_security/role/{role_name(role)}", role_descriptor(role, pattern)))
            calls.append(
                (
                    "PUT",
                    f"/_security/user/{user_name(role)}",
                    {
                        "password": passwords[user_name(role)],
                        "roles": [role_name(role)],
                        "metadata": {"created_by": "echo-splade cluster start --secure"},
                    },
                )
            )
        return calls


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (never world-readable, not even briefly)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path.with_suffix(".tmp"), 0o600)
    os.replace(path.with_suffix(".tmp"), path)


def _extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            if not (target / member.filename).resolve().is_relative_to(target.resolve()):
                raise NodeSecurityError(f"{archive}: unsafe member path {member.filename!r}")
        zf.extractall(target)


def http_error_reason(exc: urllib.error.HTTPError) -> str:
    """The ``reason`` of an Elasticsearch error body (for setup failures), else the status line."""
    try:
        body = json.loads(exc.read().decode("utf-8", "replace"))
        return str(body["error"]["reason"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {exc.code}"
