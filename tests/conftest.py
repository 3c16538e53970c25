"""The shared fixture world: two organizations, their users and tokens, API clients for each;
and the job definitions tests read: the project's own (``examples/``) and, only when
``FORMICARY_REFERENCE_EXAMPLES`` names their folder, the reference system's."""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ants.messaging import InProcessTransport, Transport

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
REFERENCE_VAR = "FORMICARY_REFERENCE_EXAMPLES"
REFERENCE_UNSET = (
    f"{REFERENCE_VAR} is not set: the reference system's own definitions are checked only when it "
    "names their folder (.ci/run sets it; the repository's own examples/ are tested regardless)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (skipped in the SQLite pass)")


@dataclass
class Member:
    user: object
    token: str
    org_id: int


def _member(username: str, org_name: str, *, staff: bool = False) -> Member:
    from orgs import services

    user = services.user_ensure(username=username, org_name=org_name, create=True)
    if staff:
        user.is_staff = True
        user.set_password("pw-" + username)
        user.save()
    issued = services.token_issue(user=user)
    return Member(user=user, token=issued.plain, org_id=user.organization_id)


@pytest.fixture
def alice(db) -> Member:  # type: ignore[no-untyped-def]
    """Member of acme."""
    return _member("alice", "acme", staff=True)


@pytest.fixture
def bob(db) -> Member:  # type: ignore[no-untyped-def]
    """Member of globex: must never see acme's data."""
    return _member("bob", "globex", staff=True)


def _client(member: Member):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member.token}")
    return client


@pytest.fixture
def api(alice):  # type: ignore[no-untyped-def]
    return _client(alice)


@pytest.fixture
def bob_api(bob):  # type: ignore[no-untyped-def]
    return _client(bob)


@pytest.fixture
def anon_api(db):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def use_transport() -> Iterator[Callable[["Transport"], "Transport"]]:
    """Installs a transport as the process-wide one (what the API, the consumers and the queen's
    helpers get from ``get_transport()``); closed and forgotten after the test. Returns it."""
    from jobs.domain import messaging

    yield messaging.set_transport
    messaging.reset_transport()


@pytest.fixture
def in_process_transport(use_transport: Callable[["Transport"], "Transport"]) -> "InProcessTransport":
    """A fresh in-process transport, installed as the process-wide one for this test."""
    from ants.messaging import InProcessTransport

    transport = InProcessTransport()
    use_transport(transport)
    return transport


def example_paths() -> list[Path]:
    """The project's own example definitions (examples/*.yaml)."""
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def example_text(name: str) -> str:
    return (EXAMPLES_DIR / f"{name}.yaml").read_text()


def reference_dir() -> Path | None:
    """The reference's examples folder named by FORMICARY_REFERENCE_EXAMPLES; empty means unset."""
    value = os.environ.get(REFERENCE_VAR, "").strip()
    return Path(value) if value else None


def reference_paths() -> list[Path]:
    """The reference's definitions; skips the calling test when the variable is unset, fails it
    when the variable names a folder that is missing or holds no *.yaml."""
    folder = reference_dir()
    if folder is None:
        pytest.skip(REFERENCE_UNSET)
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        pytest.fail(f"{REFERENCE_VAR}={folder}: no *.yaml there (missing or empty folder)")
    return paths


def reference_text(name: str) -> str:
    """One reference definition by file name (without .yaml), or a skip when the variable is unset."""
    path = next((p for p in reference_paths() if p.stem == name), None)
    if path is None:
        pytest.fail(f"{REFERENCE_VAR}: {name}.yaml is not in {reference_dir()}")
    return path.read_text()


def reference_params() -> list:  # type: ignore[type-arg]
    """Parameters over the reference's definitions: one per file, or, without the variable, a
    single parameter that skips with the reason (never an empty, silent parametrization)."""
    REFERENCE_REPORT.touched = True
    folder = reference_dir()
    if folder is None:
        return [pytest.param(None, id="not-configured", marks=pytest.mark.skip(reason=REFERENCE_UNSET))]
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        return [pytest.param(None, id="no-yaml-in-folder")]  # the test fails, naming the folder
    return [pytest.param(p, id=p.name) for p in paths]


def reference_param(path: Path | None) -> Path:
    """The path a ``reference_params`` parameter holds; fails when the named folder had none."""
    if path is None:
        pytest.fail(f"{REFERENCE_VAR}={reference_dir()}: no *.yaml there (missing or empty folder)")
    return path


@dataclass
class ReferenceReport:
    """What the reference-example tests did, for the summary line at the end of the run."""

    touched: bool = False
    loaded: set[str] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)
    not_run: dict[str, str] = field(default_factory=dict)


REFERENCE_REPORT = ReferenceReport()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    report = REFERENCE_REPORT
    if not report.touched:
        return
    folder = reference_dir()
    if folder is None:
        terminalreporter.write_line(f"reference examples: skipped ({REFERENCE_UNSET})")
        return
    terminalreporter.write_line(
        f"reference examples: {len(report.loaded)} loaded, {len(report.ran)} run, "
        f"{len(report.not_run)} not run here (from {folder})"
    )
    for name, why in sorted(report.not_run.items()):
        terminalreporter.write_line(f"  not run: {name}: {why}")


def upload(client, text: str, content_type: str = "application/yaml"):  # type: ignore[no-untyped-def]
    return client.post("/api/jobs/definitions", data=text.encode(), content_type=content_type)


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_site() -> Iterator[int]:
    """The site's ASGI application served by uvicorn in a thread (HTTP and websockets) on a free
    loopback port, which it yields; stopped on exit."""
    import threading
    import time

    import uvicorn

    from formicary_site.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", ws="websockets-sansio"))  # fmt: skip
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class SmtpServer:
    """A real SMTP server: ``python -m aiosmtpd`` in its own process, storing each message it
    receives in a Maildir (aiosmtpd's Mailbox handler; the envelope recipients in X-RcptTo)."""

    port: int
    maildir: Path

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[EmailMessage]:
        import email
        import email.policy

        files = sorted((self.maildir / "new").glob("*"), key=lambda p: p.stat().st_mtime_ns)
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]  # type: ignore[misc]

    def wait_for(self, to: str, timeout: float = 20.0) -> EmailMessage:
        """The first message to ``to`` (delivery is synchronous: the wait is only slack)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if to in str(m["X-RcptTo"] or m["To"])]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no mail to {to} arrived"
            time.sleep(0.05)


@pytest.fixture
def smtp_server(settings, tmp_path: Path) -> Iterator[SmtpServer]:  # type: ignore[no-untyped-def]
    """Starts an SMTP server process and points Django's mail at it through ``EMAIL_URL``'s own
    parser (what settings.py does with the variable)."""
    import mailbox
    import socket
    import subprocess
    import sys
    import time

    import environ

    port = free_port()
    maildir = tmp_path / "maildir"
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
    server = SmtpServer(port, maildir)
    for name, value in environ.Env.email_url_config(server.url).items():
        setattr(settings, name, value)
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
