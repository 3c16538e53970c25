"""Real parts for outbound tests: an SMTP server (aiosmtpd, in a thread or as its own process), an
HTTP server in a thread standing in for Slack and webhook receivers, and a queen with a SHELL ant
in threads."""

import json
import mailbox
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ants.messaging import InProcessTransport
from tests.engine.harness import Harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(settings) -> Iterator[_Inbox]:  # type: ignore[no-untyped-def]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield inbox
    controller.stop()


@dataclass
class SmtpProcess:
    """``python -m aiosmtpd`` storing what it receives in a Maildir (recipients in X-RcptTo)."""

    port: int
    maildir: Path

    def messages(self) -> list[mailbox.MaildirMessage]:
        box = mailbox.Maildir(self.maildir, create=False)
        return sorted(box.values(), key=lambda m: m.get_date())


@pytest.fixture
def smtp_process(settings, tmp_path) -> Iterator[SmtpProcess]:  # type: ignore[no-untyped-def]
    port, maildir = free_port(), tmp_path / "maildir"
    mailbox.Maildir(maildir, create=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox",
         str(maildir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                if conn.recv(64).startswith(b"220"):
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "aiosmtpd did not start"
        time.sleep(0.05)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield SmtpProcess(port, maildir)
    proc.terminate()
    proc.wait(timeout=10)


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
