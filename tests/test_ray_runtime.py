"""RayRuntime.start without a real Ray (a real start is what the ingest and service tests do): which cluster it
picks and its retry when Ray's node registration times out. No cluster, no Ray processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from echo_splade.ingest import RayRuntime, RayStartError

ray = pytest.importorskip("ray")
TIMEOUT = "The current node timed out during startup. This could happen because ..."


class FakeInit:
    """``ray.init`` that fails ``failures`` times like a busy machine, leaving a Ray-looking child process."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.children = failures, [], []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if len(self.calls) <= self.failures:
            # what a failed attempt leaves behind: a child process whose command line runs Ray
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)", "/x/site-packages/ray/core/gcs_server"]
            )
            self.children.append(child)
            # Popen can return while the kernel is still setting up the child's argument list (its
            # /proc/PID/cmdline is empty for a moment); Ray's own processes have run for seconds by the time
            # its start times out, so wait until the command line is there, as it is then
            deadline = time.monotonic() + 10
            while b"/site-packages/ray/" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the fake Ray process {child.pid} shows no command line")
                time.sleep(0.001)
            raise Exception(TIMEOUT)


@pytest.fixture
def fake_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)

    def install(failures: int) -> FakeInit:
        init = FakeInit(failures)
        monkeypatch.setattr(ray, "init", init)
        return init

    return install


def test_a_local_start_is_retried_and_a_failed_attempt_leaves_no_process(fake_ray):
    init = fake_ray(failures=2)
    runtime = RayRuntime()
    assert not runtime.joins and runtime.start(num_cpus=1, namespace="n") and runtime.started
    assert len(init.calls) == 3
    # always a new local cluster (never a `ray start` cluster found on the machine), loopback only
    assert {(c["address"], c["_node_ip_address"], c["num_cpus"], c["namespace"]) for c in init.calls} == {
        ("local", "127.0.0.1", 1, "n")
    }
    assert [child.wait(timeout=10) for child in init.children] == [-15, -15]  # SIGTERM: none left running


def test_the_last_failed_attempt_is_a_ray_start_error(fake_ray):
    init = fake_ray(failures=3)
    with pytest.raises(RayStartError, match="in 3 attempt"):
        RayRuntime().start(num_cpus=1, attempts=3)
    assert [child.wait(timeout=10) for child in init.children] == [-15, -15, -15]


def test_an_address_joins_without_local_options(fake_ray, monkeypatch):
    init = fake_ray(failures=0)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    runtime = RayRuntime()
    assert runtime.joins and runtime.start(num_cpus=1)
    (call,) = init.calls
    assert call["address"] == "ray://head:10001" and "num_cpus" not in call
