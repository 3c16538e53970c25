"""Deployments the fault tests kill and restart: a standalone server (one process, SQLite), or the
distributed parts (web, queen, ants) over a PostgreSQL and a Redis of their own, so killing those
disturbs no other test. Every part is a real process started from ``manage.py``; requests go in
through the REST API and their states are read from the database directly (it works while the
web server is down)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "FILTERED", "SKIPPED"}

# One task that leaves a trace of when it runs: a line per 0.2 s with its task execution id,
# attempt and shell pid, so a test can tell whether two runs of one task ever overlapped.
PROBE = """\
job_type: fault-probe
tasks:
- task_type: t
  method: SHELL
  script:
  - for i in 1 2 3 4 5; do echo "$FORMICARY_TASK_EXECUTION_ID $FORMICARY_ATTEMPT $$ $(date +%s.%N)" >> {markers}; sleep {tick}; done
"""


def wait_until(check, timeout: float, what: str, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    """A PostgreSQL server of the test's own (its data folder and port), killable with -9."""

    def __init__(self) -> None:
        self.bin = Path(
            sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
        )
        # a folder of its own the postgres user can reach (pytest's are private to root)
        root = self.root = Path(tempfile.mkdtemp(prefix="formicary-faults-pg."))
        root.chmod(0o755)
        self.data = root / "pg"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/formicary"
        if os.geteuid() == 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], capture_output=True)
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A",
                                     "trust", "--no-sync"]), check=True, capture_output=True)  # fmt: skip
        self.start()
        subprocess.run(_as_postgres([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "formicary"]), check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        # Commits are durable when they return, as on a production server: with synchronous_commit
        # off a kill -9 loses the last commits, answers the queen applied and acknowledged among
        # them (docs/reliability.md). fsync stays off: a killed process loses nothing the kernel
        # has, and this test kills processes, not the machine.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=on -c full_page_writes=off -c max_connections=100")  # fmt: skip
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
                                     "-w", "-t", "60", "-o", options, "start"]), check=True, capture_output=True)  # fmt: skip

    def kill(self) -> None:
        """kill -9 of the postmaster and its backends (a crash: recovery runs at the next start)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10, "postgres to die")

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    """A Redis server of the test's own that keeps its data in an append-only file (fsync on
    every write), as a production Redis for Formicary should: a restart loses no message."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
        )  # fmt: skip
        wait_until(lambda: _redis_ping(self.port), 20, "redis to start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


@dataclass
class Run:
    """One run of a task as its trace shows it: first and last line seen."""

    task_id: int
    attempt: int
    pid: int
    first: float
    last: float
    lines: int


def runs_of(markers: Path) -> list[Run]:
    runs: dict[tuple[int, int, int], Run] = {}
    if not markers.exists():
        return []
    for line in markers.read_text().splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        task_id, attempt, pid, at = int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
        run = runs.get((task_id, attempt, pid))
        if run is None:
            runs[(task_id, attempt, pid)] = Run(task_id, attempt, pid, at, at, 1)
        else:
            run.first, run.last, run.lines = min(run.first, at), max(run.last, at), run.lines + 1
    return list(runs.values())


def overlaps(runs: Iterable[Run]) -> list[tuple[Run, Run]]:
    """Pairs of runs of one task whose traces overlap in time (it ran twice at once)."""
    by_task: dict[int, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.task_id, []).append(run)
    found = []
    for task_runs in by_task.values():
        task_runs.sort(key=lambda r: r.first)
        for a, b in zip(task_runs, task_runs[1:], strict=False):
            if b.first <= a.last:
                found.append((a, b))
    return found


class Deployment:
    """Formicary as processes: ``standalone`` (one process) or ``distributed`` (web, queen, ants
    over ``postgres`` and ``redis``). ``kill(part)`` is a ``kill -9``; ``start(part)`` starts it
    again with the same ids, ports and folders."""

    def __init__(self, mode: str, tmp: Path, *, ants: int = 1, concurrency: int = 4,
                 ant_timeout: float = 15.0, postgres: Postgres | None = None, redis: Redis | None = None,
                 tick: float = 0.2) -> None:  # fmt: skip
        self.mode, self.tmp, self.concurrency, self.ant_timeout = mode, tmp, concurrency, ant_timeout
        self.markers = tmp / "markers"
        self.tick = tick
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.postgres, self.redis = postgres, redis
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env.update({"PYTHONUNBUFFERED": "1", "FORMICARY_DATA_DIR": str(tmp / "data"),
                         "SECRET_KEY": secrets.token_urlsafe(40),
                         # keys are required outside standalone (formicary_site/keys.py)
                         "FORMICARY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                         "FORMICARY_REDIS_PREFIX": f"f{secrets.token_hex(4)}", "LOG_LEVEL": "INFO"})  # fmt: skip
        if mode == "distributed":
            assert postgres is not None and redis is not None
            self.env.update({"DATABASE_URL": postgres.url, "REDIS_URL": redis.url})
            self.parts = ["web", "queen", *(f"ant-{i + 1}" for i in range(ants))]
        else:
            self.parts = ["standalone"]
        self.token = ""
        self._log_from: dict[str, int] = {}  # where each part's log of its latest start begins

    # -- processes ----------------------------------------------------------------------------
    def _manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=180)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def setup(self) -> Deployment:
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        # one process for both (a Django start-up costs seconds on a busy machine)
        script = ("from django.core.management import call_command; from orgs import services; "
                  "call_command('migrate', verbosity=0); "
                  "user = services.user_ensure(username='alice', org_name='acme', create=True); "
                  "print(services.token_issue(user=user).plain)")  # fmt: skip
        self.token = self._manage("shell", "-c", script).strip().splitlines()[-1]
        for part in self.parts:
            self.start(part)
        wait_until(lambda: self._api("get", "/api/jobs/definitions").status_code == 200, 60, "the web server")
        response = self._api("post", "/api/jobs/definitions",
                             data=PROBE.format(markers=self.markers, tick=self.tick).encode(),
                             headers={"Content-Type": "application/yaml"})  # fmt: skip
        assert response.status_code in (200, 201), response.text
        return self

    def command(self, part: str) -> list[str]:
        if part == "standalone":
            return ["standalone", "--port", str(self.port), "--concurrency", str(self.concurrency)]
        if part == "web":
            return []  # uvicorn, below
        if part == "queen":
            return ["queen", "--id", "queen-1", "--ant-timeout", str(self.ant_timeout)]
        return ["ant", "--id", part, "--concurrency", str(self.concurrency), "--heartbeat-secs", "0.5",
                "--work-root", str(self.tmp / part), "--methods", "SHELL"]  # fmt: skip

    def start(self, part: str) -> subprocess.Popen:
        if part == "postgres":
            assert self.postgres is not None
            self.postgres.start()
            return None  # type: ignore[return-value]
        if part == "redis":
            assert self.redis is not None
            self.redis.start()
            return None  # type: ignore[return-value]
        if part == "web":
            args = [sys.executable, "-m", "uvicorn", "formicary_site.asgi:application", "--port", str(self.port),
                    "--log-level", "warning", "--lifespan", "off"]  # fmt: skip
        else:
            args = [sys.executable, str(ROOT / "manage.py"), *self.command(part)]
        self._log_from[part] = (
            (self.tmp / f"{part}.log").stat().st_size if (self.tmp / f"{part}.log").exists() else 0
        )
        log = open(self.tmp / f"{part}.log", "ab")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[part] = proc
        return proc

    def wait_up(self, part: str, timeout: float = 120.0) -> None:
        """Until the part (re)started last is up: its start-up line logged, the API answering, or
        (PostgreSQL, Redis) at once, as their start waits for them."""
        if part == "web":
            wait_until(
                lambda: self._api("get", "/api/jobs/definitions").status_code == 200, timeout, "the web"
            )
            return
        if part in ("postgres", "redis"):
            return
        marker = "starting (pid" if part in ("standalone", "queen") else f"ant {part}: methods"
        log = self.tmp / f"{part}.log"

        def logged() -> bool:
            with open(log, "rb") as f:
                f.seek(self._log_from.get(part, 0))
                return marker.encode() in f.read()

        wait_until(logged, timeout, f"{part} to start", every=0.05)

    def kill(self, part: str) -> None:
        if part == "postgres":
            assert self.postgres is not None
            self.postgres.kill()
        elif part == "redis":
            assert self.redis is not None
            self.redis.kill()
        else:
            proc = self.procs[part]
            proc.kill()
            proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in self.tmp.glob("*.log")
        )

    # -- requests -----------------------------------------------------------------------------
    def _api(self, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def submit(self, n: int = 1, timeout: float = 60.0) -> list[int]:
        """Submit ``n`` probe requests at once, trying again while the web server (or what it
        needs) is down."""
        body = {"requests": [{"job_type": "fault-probe"} for _ in range(n)]}

        def post() -> list[int] | None:
            response = self._api("post", "/api/jobs/requests/bulk", json=body)
            return [r["id"] for r in response.json()] if response.status_code == 201 else None

        return wait_until(post, timeout, f"{n} requests to be accepted", every=0.2)

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.mode == "standalone":
            with sqlite3.connect(f"file:{self.tmp / 'data' / 'formicary.sqlite3'}?mode=ro", uri=True,
                                 timeout=10) as db:  # fmt: skip
                return db.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        assert self.postgres is not None
        with psycopg.connect(self.postgres.url, connect_timeout=5) as db:
            return db.execute(sql, params).fetchall()

    def states(self) -> dict[int, str]:
        """Every request's state, read from the database (None while it cannot be read)."""
        return dict(self._rows("SELECT id, job_state FROM jobs_jobrequest"))

    def tasks(self) -> list[tuple]:
        return self._rows("SELECT id, task_state, attempt, ant_id, error_message FROM jobs_taskexecution")

    def wait_all_ended(self, timeout: float) -> dict[int, str]:
        def ended() -> dict[int, str] | None:
            states = self.states()
            return states if all(s in TERMINAL for s in states.values()) else None

        try:
            return wait_until(ended, timeout, "every request to end", every=0.5)
        except AssertionError:
            states = self.states()
            stuck = {k: v for k, v in states.items() if v not in TERMINAL}
            tasks = self._rows(
                "SELECT t.id, e.job_request_id, t.task_state, t.attempt, t.ant_id, t.ant_started_at, t.started_at, "
                "t.error_message FROM jobs_taskexecution t JOIN jobs_jobexecution e ON e.id = t.job_execution_id "
                "WHERE t.task_state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')"
            )  # fmt: skip
            raise AssertionError(f"{len(stuck)} requests did not end: {sorted(stuck.items())[:20]}\n{tasks}\n"
                                 f"{self.logs()}") from None  # fmt: skip

    def first_trace_of(self, request_id: int) -> float | None:
        """When the request's task first wrote its trace (None: not yet)."""
        ids = {row[0] for row in self._rows(
            "SELECT t.id FROM jobs_taskexecution t JOIN jobs_jobexecution e ON e.id = t.job_execution_id "
            "WHERE e.job_request_id = %s", (request_id,))}  # fmt: skip
        times = [r.first for r in runs_of(self.markers) if r.task_id in ids]
        return min(times) if times else None
