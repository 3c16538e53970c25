"""Real parts for outbound tests: an HTTP server in a thread standing in for Slack and webhook
receivers, and a queen with a SHELL ant in threads (the SMTP server is tests/conftest.py's)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ants.messaging import InProcessTransport
from tests.engine.harness import Harness


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpSink:
    """Records every POST; answers 500 to the first ``fail_first`` of them."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            sink.received.append(Received(self.path, dict(self.headers.items()), body))
            failing = len(sink.received) <= sink.fail_first
            self.send_response(500 if failing else 200)
            self.end_headers()
            self.wfile.write(b"down" if failing else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()


@pytest.fixture
def outbound_in_process(settings) -> None:  # type: ignore[no-untyped-def]
    settings.FORMICARY_OUTBOUND_IN_PROCESS = True
    settings.FORMICARY_OUTBOUND_RETRY_SECS = 0.2
    settings.FORMICARY_OUTBOUND_ATTEMPTS = 3


@pytest.fixture
def standalone(tmp_path, transactional_db, use_transport) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    harness = Harness(use_transport(InProcessTransport()), tmp_path).start()
    harness.add_ant("ant-events")
    yield harness
    harness.stop()


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Polls until ``check`` returns something true (outbound work runs on other threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check}")
        time.sleep(0.05)
