"""Clusters for engine scenarios: ``standalone`` (queen and ants in threads over the in-process
transport) and ``distributed`` (queen and ants as separate processes over Redis and the test
database). Both have ant-a (tags a, shared) and ant-b (tags b, shared), concurrency 2."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from ants.messaging import InProcessTransport, Transport, transport_from_url
from tests.engine.harness import SHELL_AND_HTTP, Harness

ROOT = Path(__file__).resolve().parents[2]
ANTS = {"ant-a": ["a", "shared"], "ant-b": ["b", "shared"]}


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s.get('PASSWORD') or ''}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Processes:
    """The distributed deployment: every part its own process, talking through Redis."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ, "DATABASE_URL": database_url(), "FORMICARY_REDIS_PREFIX": self.prefix,
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.procs: dict[str, subprocess.Popen] = {}

    def start_queen(self, name: str = "queen", queen_id: str = "queen-test") -> subprocess.Popen:
        return self._spawn(name, ["queen", "--id", queen_id, "--ant-timeout", "3"])

    def start_ant(self, ant_id: str, tags: list[str], concurrency: int = 2) -> subprocess.Popen:
        args = ["ant", "--id", ant_id, "--concurrency", str(concurrency), "--heartbeat-secs", "0.5",
                "--work-root", str(self.tmp / ant_id), "--tags", *tags, "--methods", *SHELL_AND_HTTP]  # fmt: skip
        return self._spawn(ant_id, args)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
        self.procs[name] = proc
        return proc

    def wait_ready(self, names: list[str] | None = None, timeout: float = 120.0) -> None:
        """Until each process has said it runs (a queen's "queen <id> running", an ant's
        "ant <id>: methods ..."). Starting a process imports Django and the product: seconds on an
        idle machine, tens of seconds on a loaded one; the tests' own deadlines measure the
        behaviour after that, not the interpreter's start. A process that exits fails at once."""
        deadline = time.monotonic() + timeout
        pending = set(names if names is not None else self.procs)
        while pending:
            for name in list(pending):
                if self.procs[name].poll() is not None:
                    raise AssertionError(f"{name} exited ({self.procs[name].returncode})\n{self.logs()}")
                text = (self.tmp / f"{name}.log").read_text(errors="replace")
                if " running" in text or f"ant {name}:" in text:
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"{sorted(pending)} not running after {timeout:.0f}s\n{self.logs()}")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log")
        )


class Cluster:
    def __init__(self, mode: str, tmp: Path, use_transport: Callable[[Transport], Transport]) -> None:
        """``use_transport`` is the fixture of that name: it installs the cluster's transport as
        the process-wide one and forgets it after the test."""
        self.mode = mode
        self.tmp = tmp
        self.use_transport = use_transport
        self.harness: Harness | None = None
        self.processes: Processes | None = None

    def start(self) -> "Cluster":
        if self.mode == "standalone":
            self.harness = Harness(self.use_transport(InProcessTransport()), self.tmp).start()
            for ant_id, tags in ANTS.items():
                self.harness.add_ant(ant_id, tags=tags)
        else:
            self.processes = Processes(self.tmp)
            self.use_transport(transport_from_url(os.environ["REDIS_URL"], prefix=self.processes.prefix))
            self.processes.start_queen()
            for ant_id, tags in ANTS.items():
                self.processes.start_ant(ant_id, tags)
            self.processes.wait_ready()
        return self

    def stop(self) -> None:
        if self.harness:
            self.harness.stop()
        if self.processes:
            self.processes.stop()


@pytest.fixture
def processes(tmp_path, transactional_db, use_transport):  # type: ignore[no-untyped-def]
    """Distributed parts started by the test itself (for killing and restarting them)."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (scripts/test starts Redis)")
    p = Processes(tmp_path)
    use_transport(transport_from_url(os.environ["REDIS_URL"], prefix=p.prefix))
    yield p
    p.stop()


@pytest.fixture(params=["standalone", "distributed"])
def cluster(request, tmp_path, transactional_db, use_transport):  # type: ignore[no-untyped-def]
    if request.param == "distributed" and not os.environ.get("REDIS_URL"):
        pytest.skip("distributed mode needs REDIS_URL (scripts/test starts Redis)")
    c = Cluster(request.param, tmp_path, use_transport).start()
    yield c
    c.stop()
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    if failed and c.processes:
        print(c.processes.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def fast_sql_on():  # type: ignore[no-untyped-def]
    """For tests of a speed trick itself (its queries, its shapes): on even when the run has
    FORMICARY_FAST_SQL=false."""
    from django.conf import settings

    before = settings.FORMICARY_FAST_SQL
    settings.FORMICARY_FAST_SQL = True
    yield
    settings.FORMICARY_FAST_SQL = before
