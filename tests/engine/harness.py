"""Runs a queen and ants in threads of the test process over one transport (standalone shape)."""

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ants.artifact_hooks import install_artifact_hooks
from ants.config import AntConfig
from ants.messaging.base import Transport
from ants.worker import AntWorker
from artifacts.storage import ant_store
from jobs.domain.logs import LogWriter
from jobs.models import JobRequest
from jobs.queen.queen import Queen
from jobs.states import JOB_TERMINAL

SHELL_AND_HTTP = ["SHELL", "HTTP_GET", "HTTP_POST_FORM", "HTTP_POST_JSON", "HTTP_PUT_FORM", "HTTP_PUT_JSON",
                  "HTTP_DELETE"]  # fmt: skip


class Harness:
    def __init__(self, transport: Transport, work_root: Path, *, ant_timeout_secs: float = 3.0) -> None:
        self.transport = transport
        self.work_root = work_root
        self.queen = Queen(transport, queen_id="queen-test", ant_timeout_secs=ant_timeout_secs, block_ms=20,
                           housekeeping_secs=0.2)  # fmt: skip
        self.writer = LogWriter(transport, consumer="queen-test")
        self.ants: dict[str, AntWorker] = {}
        self.threads: list[threading.Thread] = []

    def add_ant(self, ant_id: str, *, tags: Iterable[str] = (), methods: Iterable[str] = SHELL_AND_HTTP,
                concurrency: int = 2) -> AntWorker:  # fmt: skip
        config = AntConfig(ant_id=ant_id, tags=list(tags), methods=list(methods), concurrency=concurrency,
                           heartbeat_secs=0.5, work_root=self.work_root / ant_id)  # fmt: skip
        ant = AntWorker(config, self.transport, block_ms=100)
        install_artifact_hooks(ant, ant_store())
        self.ants[ant_id] = ant
        self._spawn(ant.run_forever, ant_id)
        ant.heartbeat()
        return ant

    def _spawn(self, target, name: str) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> "Harness":
        self._spawn(self.queen.run_forever, "queen")
        self._spawn(self.writer.run_forever, "log-writer")
        return self

    def stop(self) -> None:
        self.queen.stop()
        self.writer.stop()
        for ant in self.ants.values():
            ant.stop()
        self.transport.wake()
        for thread in self.threads:
            thread.join(timeout=20)


def wait_for_state(
    request_id: int, states: Iterable[str] = JOB_TERMINAL, timeout: float = 30.0
) -> JobRequest:
    wanted = {str(s) for s in states}
    deadline = time.monotonic() + timeout
    while True:
        request = JobRequest.objects.get(pk=request_id)
        if request.job_state in wanted:
            return request
        if time.monotonic() > deadline:
            raise AssertionError(f"request {request_id} is {request.job_state} ({request.state_message}), "
                                 f"not {sorted(wanted)} after {timeout}s")  # fmt: skip
        time.sleep(0.05)
