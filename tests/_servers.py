"""Running the proxy and the search page for tests: free loopback ports, an ASGI app in a thread
(uvicorn), the ``echo-splade proxy`` command as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread on a free loopback port (``with`` stops it)."""

    def __init__(self, app, **kwargs) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"server_header": False, "date_header": False, "timeout_graceful_shutdown": 2, **kwargs}
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", **options)
        if kwargs.get("ssl_certfile"):
            self.url = f"https://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ProxyProcess:
    """``echo-splade proxy ARGS --port P`` as a subprocess; stderr goes to ``log`` (read it after ``stop``)."""

    def __init__(self, args: list[str], log: Path, scheme: str = "http", env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "echo_splade", *args, "--port", str(self.port)],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait(self, timeout: float = 180.0, verify=True) -> ProxyProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"echo-splade proxy exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + "/", timeout=5, verify=verify)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"echo-splade proxy did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()
        return self.log.read_text(errors="replace")
