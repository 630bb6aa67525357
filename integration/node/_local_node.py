"""A real OpenSearch (or Elasticsearch) node on this machine, assembled from Maven Central.

Layout under ``home`` (``$ECHO_SPLADE_HOME``; else ``/var/lib/echo-splade`` as root, ``~/.cache/echo-splade``
otherwise)::

    maven/                         verified downloads (a second start needs no network)
    dist/opensearch-2.19.6/        the unpacked server plus the module folders we add (read-only for the node)
    nodes/opensearch-9200/         one node: config/, data/, logs/, tmp/, node.pid

OpenSearch refuses to run as root, so as root the node runs as the unprivileged system user ``echo-splade``
(created on first start) and owns only its ``nodes/<name>/`` folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from echo_splade.client import ConfigurationError

from ._engine_distribution import ENGINES, JAVA_SOURCES, EngineDistribution
from ._java_home import JavaHome
from ._ml_plugins import unpack_plugin
from ._node_security import NodeSecurity, NodeSecurityError, http_error_reason
from ._zip_archive import extract_zip

logger = logging.getLogger(__name__)

HOME_ENV = "ECHO_SPLADE_HOME"
DOWNLOADS_ENV = "ECHO_SPLADE_DOWNLOADS"
SERVICE_USER = "echo-splade"
CLUSTER_NAME = "echo-splade"


#: ``<engine> <version>`` of the server that last used a node folder (see ``_check_node_dir_version``).
NODE_VERSION_FILE = "echo-splade-version"


def default_home() -> Path:
    """``$ECHO_SPLADE_HOME``, else ``/var/lib/echo-splade`` when root, else ``~/.cache/echo-splade``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/echo-splade")
    return Path.home() / ".cache" / "echo-splade"


class NodeStartError(RuntimeError):
    """The node did not come up; ``log_tail`` holds the end of its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class LocalNode:
    """One local single-node cluster, bound to 127.0.0.1.

    Example::

        node = LocalNode(port=9210, settings={"thread_pool.write.queue_size": 1})
        node.start(timeout=180)   # True: started now; False: it was already running
        ...
        node.stop()

    Args:
        engine: ``"opensearch"`` or ``"elasticsearch"``.
        version: server version; default: the engine's tested default.
        port: HTTP port; default 9200 (OpenSearch) / 9201 (Elasticsearch).
        home: root of downloads, installs and node folders (see module docstring).
        heap: JVM heap, e.g. ``"512m"`` or ``"1g"`` (min = max).
        settings: extra node settings written to the config file, e.g. ``{"thread_pool.write.queue_size": 1}``;
            ``None`` as a value leaves that setting out (``{"discovery.type": None}``: not a single node).
        download_dir: the Maven download cache; default ``$ECHO_SPLADE_DOWNLOADS``, else ``home/maven``
            (share one between homes to download once).
        secure: Elasticsearch only: security on (HTTPS with a locally generated CA, the bootstrap superuser
            ``elastic``, least-privilege roles and users, no anonymous access; see ``_node_security``).
            Default port 9202.
        ml: OpenSearch only: add the ML Commons, neural-search, k-NN and job-scheduler plugins
            (``cluster start --ml``; see ``_ml_plugins``); installed beside the plain server.
    """

    def __init__(
        self,
        engine: str = "opensearch",
        version: Optional[str] = None,
        port: Optional[int] = None,
        home: Optional[os.PathLike | str] = None,
        heap: str = "512m",
        settings: Optional[Mapping[str, Any]] = None,
        download_dir: Optional[os.PathLike | str] = None,
        secure: bool = False,
        ml: bool = False,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if secure and engine != "elasticsearch":
            raise ConfigurationError(
                "a secured node needs the elasticsearch engine: the OpenSearch security plugin is not "
                "published on Maven Central for 2.19.x, so a secured OpenSearch node cannot be assembled",
                option="engine",
                value="elasticsearch",
            )
        self.secure = bool(secure)
        self.distribution = EngineDistribution.for_engine(engine, version, ml=ml)
        self.ml = bool(ml)
        default_port = self.distribution.default_port + (1 if self.secure else 0)
        self.port = default_port if port is None else int(port)
        if not 1024 <= self.port <= 65535:
            raise ValueError(f"port must be in 1024..65535, got {port!r}")
        heap = str(heap).strip().lower()
        if not (heap[:-1].isdigit() and heap[-1] in "mg") or int(heap[:-1]) <= 0:
            raise ValueError(f"heap must look like '512m' or '2g', got {heap!r}")
        self.heap = heap
        self.settings = dict(settings or {})
        for key in self.settings:
            if not key or any(c.isspace() for c in key) or ":" in key:
                raise ValueError(f"invalid setting name {key!r}")
        self.home = Path(home).expanduser().resolve() if home is not None else default_home()
        download_dir = download_dir or os.environ.get(DOWNLOADS_ENV)
        self.download_dir = Path(download_dir).expanduser().resolve() if download_dir else self.home / "maven"
        self.as_service_user = os.geteuid() == 0

    # ----------------------------------------------------------------- paths
    @property
    def engine(self) -> str:
        return self.distribution.engine

    @property
    def version(self) -> str:
        return self.distribution.version

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"

    @property
    def security(self) -> Optional[NodeSecurity]:
        """The node's TLS material and credentials (``None`` unless ``secure``)."""
        return NodeSecurity(self.node_dir, self.install_dir) if self.secure else None

    @property
    def install_dir(self) -> Path:
        return self.home / "dist" / self.distribution.dir_name

    @property
    def node_dir(self) -> Path:
        return self.home / "nodes" / f"{self.engine}-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "node.pid"

    @property
    def _lock_path(self) -> Path:
        return self.node_dir.with_name(f".{self.node_dir.name}.lock")

    @property
    def log_file(self) -> Path:
        return self.node_dir / "logs" / f"{CLUSTER_NAME}.log"

    @property
    def console_file(self) -> Path:
        return self.node_dir / "logs" / "console.log"

    def __repr__(self) -> str:
        return (
            f"LocalNode(engine={self.engine!r}, version={self.version!r}, url={self.url!r}, "
            f"home={str(self.home)!r}{', secure=True' if self.secure else ''})"
        )

    # --------------------------------------------------------------- install
    def install(self) -> Path:
        """Download (once) and assemble the server with its modules; return the install dir."""
        marker = self.install_dir / ".echo-splade-installed"
        if marker.is_file():
            return self.install_dir
        self._check_home_reachable()
        with _file_lock(self.install_dir.with_name(f".{self.install_dir.name}.lock")):
            if not marker.is_file():
                self._install_locked()
        return self.install_dir

    def _install_locked(self) -> None:
        files = {artifact: artifact.fetch(self.download_dir) for artifact in self.distribution.artifacts()}
        self.install_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.install_dir.parent, prefix=".staging-"))
        try:
            root = _unzip(files[self.distribution.server], staging)
            for module in self.distribution.modules:
                folder = root / "modules" / module.name
                folder.mkdir(parents=True, exist_ok=True)
                for jar in module.jars:
                    shutil.copyfile(files[jar], folder / jar.file_name)
                if module.java_sources:
                    _compile_module(module, root, folder / f"{module.name}.jar", JavaHome.find(*self.distribution.java))
                (folder / "plugin-descriptor.properties").write_text(self._descriptor(module))
                if module.security_policy:
                    (folder / "plugin-security.policy").write_text(module.security_policy)
            for plugin in self.distribution.plugins:
                unpack_plugin(files[plugin], root / "plugins")
            _make_readable(root)
            (root / ".echo-splade-installed").write_text(json.dumps([str(a) for a in files]) + "\n")
            if self.install_dir.exists():
                shutil.rmtree(self.install_dir)
            os.replace(root, self.install_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("installed %s %s into %s", self.engine, self.version, self.install_dir)

    def _descriptor(self, module) -> str:
        lines = {
            "name": module.name,
            "description": module.description,
            "version": self.version,
            "opensearch.version" if self.engine == "opensearch" else "elasticsearch.version": self.version,
            "java.version": "11",
            "classname": module.classname,
            "extended.plugins": ",".join(module.extended_plugins),
            "has.native.controller": "false",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _check_home_reachable(self) -> None:
        """As root the node runs as another user: every parent of ``home`` must be traversable by it."""
        if not self.as_service_user:
            return
        for parent in [self.home, *self.home.parents]:
            if parent.exists() and not os.stat(parent).st_mode & 0o001:
                raise ConfigurationError(
                    f"home {self.home} is not reachable for user {SERVICE_USER!r}: {parent} is not "
                    f"world-traversable; choose a home outside it (home, or ${HOME_ENV})",
                    option="home",
                )

    # ----------------------------------------------------------------- state
    @property
    def pid(self) -> Optional[int]:
        """The pid of this node's server process if it is alive, else None (stale pidfiles are ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_process(pid) else None

    def _is_our_process(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        conf = f"-D{self._sysprop_prefix}.path.conf={self.node_dir / 'config'}".encode()
        return any(conf == a for a in args) and any(
            a.startswith(self.distribution.bootstrap_class.encode()) for a in args
        )

    @property
    def _sysprop_prefix(self) -> str:
        return "opensearch" if self.engine == "opensearch" else "es"

    def is_running(self) -> bool:
        return self.pid is not None

    def _open(self, request: urllib.request.Request | str, timeout: float) -> Any:
        """``urlopen`` with the node's CA and the ``elastic`` user when it is secured."""
        if isinstance(request, str):
            request = urllib.request.Request(request)
        context = None
        security = self.security
        if security is not None:
            context = security.ssl_context() if security.ca_cert.is_file() else None
            if security.stored_password() is not None:
                request.add_header("Authorization", security.auth_header())
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def _get(self, path: str, timeout: float = 5.0) -> Any:
        with self._open(self.url + path, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def _answers(self) -> bool:
        try:
            self._get("/", timeout=2.0)
            return True
        except (OSError, ValueError):
            return False

    # ----------------------------------------------------------------- start
    def start(self, timeout: float = 180.0, wait_for_status: str = "green") -> bool:
        """Start the node unless it runs already, then wait for ``wait_for_status``.

        Returns True when a process was started now, False when this node was already running.
        Raises ``NodeStartError`` (with the log tail) when it does not come up within ``timeout`` seconds,
        ``ValueError`` when something else already answers on the port.
        """
        if wait_for_status not in ("green", "yellow"):
            raise ValueError(f"wait_for_status must be 'green' or 'yellow', got {wait_for_status!r}")
        self._check_home_reachable()
        with _file_lock(self._lock_path):  # one start or stop at a time
            return self._start_locked(timeout, wait_for_status)

    def _start_locked(self, timeout: float, wait_for_status: str) -> bool:
        pid = self.pid
        if pid is not None:
            logger.info("%s already running (pid %s)", self, pid)
            self._wait_healthy(pid, timeout, wait_for_status)
            return False
        if self._answers():
            raise ValueError(f"something else already answers at {self.url} (not a node started from {self.node_dir})")
        self.install()
        java = JavaHome.find(*self.distribution.java)
        self._prepare_node_dir()
        env = self._environment(java)
        command = [str(self.install_dir / "bin" / self.engine)]
        logger.info("starting %s at %s", self, self.url)
        with open(self.console_file, "ab") as console:
            process = subprocess.Popen(
                command,
                cwd=self.node_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._user_kwargs(),
            )
        self.pid_file.write_text(f"{process.pid}\n")
        try:
            deadline = time.monotonic() + timeout
            self._wait_healthy(process.pid, timeout, "yellow", process)
            self._send_setup_requests()
            self._wait_healthy(process.pid, max(deadline - time.monotonic(), 1.0), wait_for_status, process)
        except BaseException:
            self._terminate(process.pid, grace=10.0)
            self.pid_file.unlink(missing_ok=True)
            raise
        return True

    def _wait_healthy(self, pid: int, timeout: float, status: str, process: Optional[subprocess.Popen] = None) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise NodeStartError(
                    f"{self.engine} exited with code {process.returncode} during startup", self.log_tail()
                )
            if process is None and not self._is_our_process(pid):
                raise NodeStartError(f"{self.engine} (pid {pid}) is gone", self.log_tail())
            try:
                health = self._get(f"/_cluster/health?wait_for_status={status}&timeout=2s", timeout=10.0)
                if not health.get("timed_out"):
                    return
                last = f"cluster health {health.get('status')}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(1.0)
        raise NodeStartError(f"{self.engine} at {self.url} not {status} after {timeout:.0f}s ({last})", self.log_tail())

    def _send_setup_requests(self) -> None:
        calls = list(self.distribution.setup_requests)
        if self.security is not None:
            calls += self.security.setup_requests()
        for method, path, body in calls:
            request = urllib.request.Request(
                self.url + path,
                data=json.dumps(body).encode(),
                method=method,
                headers={"Content-Type": "application/json"},
            )
            try:
                with self._open(request, timeout=30) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                # bodies hold passwords: name the call, never the body
                raise NodeStartError(f"setup call {method} {path} failed: {http_error_reason(exc)}") from None

    def _prepare_node_dir(self) -> None:
        self._check_node_dir_version()
        for sub in ("config", "data", "logs", "tmp"):
            (self.node_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.node_dir / NODE_VERSION_FILE).write_text(f"{self.engine} {self.version}\n")
        config = self.node_dir / "config"
        shutil.copyfile(self.install_dir / "config" / "log4j2.properties", config / "log4j2.properties")
        (config / "jvm.options").write_text(self._jvm_options())
        (config / "jvm.options.d").mkdir(exist_ok=True)
        (config / self.distribution.config_file).write_text(self._config_text())
        if self.security is not None:
            try:
                self.security.prepare(JavaHome.find(*self.distribution.java).path)
            except NodeSecurityError as exc:
                raise NodeStartError(str(exc)) from None
        if self.as_service_user:
            _ensure_service_user()
            for parent in (self.home, self.home / "nodes"):
                os.chmod(parent, 0o755)
            # the secrets (CA key, passwords) stay the invoking user's: the node never reads them
            _chown_tree(self.node_dir, SERVICE_USER, skip=("secrets",))

    def _check_node_dir_version(self) -> None:
        """A node folder written by another version: an older server refuses the newer data and keystore
        (a Java stack trace about a format "too new"), a newer one upgrades them for good. Say so first."""
        try:
            recorded = (self.node_dir / NODE_VERSION_FILE).read_text().strip()
        except OSError:
            return
        if recorded and recorded != f"{self.engine} {self.version}":
            raise NodeStartError(
                f"{self.node_dir} holds the data of {recorded}, not {self.engine} {self.version}: start that "
                f"version, or give this one another --port or --home (or delete the folder: its indices are lost)"
            )

    def _jvm_options(self) -> str:
        """The distribution's ``jvm.options`` with our heap and with its relative paths made absolute
        (the launcher runs from the read-only install dir)."""
        text = (self.install_dir / "config" / "jvm.options").read_text()
        logs, data = self.node_dir / "logs", self.node_dir / "data"
        lines = []
        for line in text.splitlines():
            bare = line.split(":", 1)[-1] if line[:1].isdigit() else line
            if bare.startswith(("-Xms", "-Xmx")):
                continue
            line = line.replace("file=logs/", f"file={logs}/").replace("ErrorFile=logs/", f"ErrorFile={logs}/")
            lines.append(line.replace("HeapDumpPath=data", f"HeapDumpPath={data}"))
        lines += ["# echo-splade", f"-Xms{self.heap}", f"-Xmx{self.heap}"]
        return "\n".join(lines) + "\n"

    def _config_text(self) -> str:
        settings: dict[str, Any] = {
            "cluster.name": CLUSTER_NAME,
            "node.name": f"{self.engine}-{self.port}",
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "discovery.type": "single-node",
            "path.data": str(self.node_dir / "data"),
            "path.logs": str(self.node_dir / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": False,
            **dict(self.distribution.extra_settings),
            **(self.security.settings() if self.security is not None else {}),
            **self.settings,
        }
        lines = ["# written by echo-splade on every start; edit the node's settings with --setting instead"]
        # a setting given as None is left out (a cluster member drops ``discovery.type``)
        lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items() if value is not None]
        return "\n".join(lines) + "\n"

    def _environment(self, java: JavaHome) -> dict:
        prefix = self.distribution.env_prefix
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix) and k != "JAVA_TOOL_OPTIONS"}
        env.update(
            {
                f"{prefix}JAVA_HOME": str(java.path),
                "JAVA_HOME": str(java.path),
                f"{prefix}PATH_CONF": str(self.node_dir / "config"),
                f"{prefix}TMPDIR": str(self.node_dir / "tmp"),
                "HOME": str(self.node_dir),
            }
        )
        return env

    def _user_kwargs(self) -> dict:
        if not self.as_service_user:
            return {}
        import pwd

        entry = pwd.getpwnam(SERVICE_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    # ------------------------------------------------------------------ stop
    def stop(self, timeout: float = 60.0) -> bool:
        """Stop this node (only the process recorded in its pidfile). Returns False when it was not running."""
        with _file_lock(self._lock_path):
            pid = self.pid
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                return False
            logger.info("stopping %s (pid %s)", self, pid)
            self._terminate(pid, grace=timeout)
            self.pid_file.unlink(missing_ok=True)
            return True

    def _terminate(self, pid: int, grace: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap(pid)
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                _reap(pid)
                return
            time.sleep(0.2)
        logger.warning("pid %s did not stop within %.0fs; killing it", pid, grace)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)

    # ---------------------------------------------------------------- status
    def status(self) -> dict:
        """``{"running", "pid", "url", "engine", "version", "health", "modules", "plugins", "home", "secure"}``;
        a secured node adds ``ca_certs``, ``password_file`` (the ``elastic`` password) and ``users_file``."""
        info: dict[str, Any] = {
            "url": self.url,
            "engine": self.engine,
            "home": str(self.home),
            "node_dir": str(self.node_dir),
            "pid": self.pid,
            "running": False,
            "secure": self.secure,
        }
        security = self.security
        if security is not None:
            # paths only: the passwords stay in their mode-0600 files
            info.update(
                {
                    "ca_certs": str(security.ca_cert),
                    "password_file": str(security.password_file),
                    "users_file": str(security.users_file),
                    "user": "elastic",
                }
            )
        try:
            root = self._get("/")
        except (OSError, ValueError) as exc:
            info["error"] = str(exc)
            return info
        info["running"] = True
        version = root.get("version", {})
        info["engine"] = version.get("distribution", "elasticsearch")
        info["version"] = version.get("number")
        try:
            info["health"] = self._get("/_cluster/health").get("status")
            nodes = self._get("/_nodes/_local/plugins").get("nodes", {})
            node: dict = next(iter(nodes.values()), {})
            info["modules"] = sorted(m["name"] for m in node.get("modules", []))
            info["plugins"] = sorted(p["name"] for p in node.get("plugins", []))
        except (OSError, ValueError) as exc:
            info["error"] = str(exc)
        return info

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the node's log (or of its console output when there is no log yet)."""
        parts = []
        for path in (self.log_file, self.console_file):
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    # ------------------------------------------------------- context manager
    def __enter__(self) -> LocalNode:
        self._started_here = self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if getattr(self, "_started_here", False):
            self.stop()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), held for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unzip(archive: Path, target: Path) -> Path:
    """Extract keeping the executable bits; return the single top-level folder."""
    extract_zip(archive, target)
    tops = [p for p in target.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise ValueError(f"{archive}: expected one top-level folder, found {[p.name for p in tops]}")
    return tops[0]


def _compile_module(module, server_root: Path, jar: Path, java: JavaHome) -> None:
    """Compile ``module.java_sources`` against the server's ``lib/`` jars into ``jar``."""
    javac = java.path / "bin" / "javac"
    if not javac.is_file():
        raise FileNotFoundError(
            f"module {module.name} is built from source and needs javac, missing in {java.path} "
            f"(install a JDK, e.g. `apt-get install openjdk-17-jdk-headless`)"
        )
    sources = [str(JAVA_SOURCES / name) for name in module.java_sources]
    with tempfile.TemporaryDirectory() as classes:
        result = subprocess.run(
            [
                str(javac),
                "--release",
                str(java.major),
                "-nowarn",
                "-cp",
                str(server_root / "lib" / "*"),
                "-d",
                classes,
                *sources,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise NodeStartError(f"compiling module {module.name} failed", result.stdout + result.stderr)
        with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(Path(classes).rglob("*.class")):
                out.write(path, path.relative_to(classes).as_posix())


def _make_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)


def _ensure_service_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
        return
    except KeyError:
        pass
    logger.info("creating system user %s", SERVICE_USER)
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER,
        ],
        check=True,
        capture_output=True,
    )


def _chown_tree(root: Path, user: str, skip: tuple[str, ...] = ()) -> None:
    """Give ``root`` and everything below it to ``user``, except the top-level entries named in ``skip``."""
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in skip]
        shutil.chown(dirpath, user, user)
        for name in filenames:
            shutil.chown(os.path.join(dirpath, name), user, user)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    """Collect the exit status when ``pid`` is our own child (a node started by this Python process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
