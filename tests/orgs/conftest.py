"""A real SMTP server (aiosmtpd) in its own process on a free port; Django's mail goes to it
through ``EMAIL_URL``'s parser, and a test reads the messages it received."""

import email
import email.policy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import environ
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpServer:
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(self.folder.glob("*.eml"))
        ]

    def wait_for(self, to: str, timeout: float = 20.0) -> EmailMessage:
        """The first message to ``to``; SMTP delivery is synchronous, the wait is only slack."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if to in str(m["To"])]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no mail to {to} arrived"
            time.sleep(0.05)


@pytest.fixture
def smtp_server(tmp_path: Path, settings) -> Iterator[SmtpServer]:  # type: ignore[no-untyped-def]
    folder = tmp_path / "mail"
    folder.mkdir()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "tests.orgs.smtp_sink.FolderSink", str(folder)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
            assert time.monotonic() < deadline, "the SMTP server did not start"
            time.sleep(0.05)
    server = SmtpServer(port=port, folder=folder)
    # what settings.py does with EMAIL_URL, pointed at this server
    for name, value in environ.Env.email_url_config(server.url).items():
        setattr(settings, name, value)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
