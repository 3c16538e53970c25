"""Request bodies are capped before they are read, on a real ASGI server (issue 14, finding 6).

A uvicorn process serves ``formicary_site.asgi:application`` on its own SQLite data folder (the
413 comes before any database work); the test streams a 300 MB chunked body it generates chunk
by chunk, so neither side holds it, and checks the server's memory did not grow with it.
"""

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        FORMICARY_DATA_DIR=str(tmp_path_factory.mktemp("server-data")),
        DJANGO_SETTINGS_MODULE="formicary_site.settings",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "formicary_site.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--lifespan", "off", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the server did not start") from None
                time.sleep(0.2)
        # warm up: the first request imports the views
        _exchange(port, "GET", "/health", [])
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), body


def _exchange(port: int, method: str, path: str, chunks: list[bytes] | Iterator[bytes],
              headers: dict[str, str] | None = None) -> tuple[int, bytes, int]:  # fmt: skip
    """Sends a chunked body, stopping once the server answers; returns status, body, bytes sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_head(method, path, {"Transfer-Encoding": "chunked", **(headers or {})}))
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered before the body ended
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after answering; the answer is still to be read
        status, body = _read_response(sock)
    return status, body, sent


def _generated(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


def test_a_300_mb_chunked_body_is_refused_without_the_server_holding_it(server: tuple[int, int]) -> None:
    port, pid = server
    before = _rss_kib(pid)
    status, body, sent = _exchange(
        port, "POST", "/api/jobs/definitions", _generated(300 * MB), {"Content-Type": "application/yaml"}
    )
    after = _rss_kib(pid)
    assert status == 413, body
    assert b"FORMICARY_MAX_BODY_BYTES" in body and b"2097152" in body
    assert sent < 100 * MB, f"the server read {sent} bytes before refusing"
    assert after - before < 100 * 1024, f"server RSS grew from {before} KiB to {after} KiB"


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server: tuple[int, int]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            _head(
                "POST",
                "/api/jobs/requests",
                {"Content-Length": str(300 * MB), "Content-Type": "application/json"},
            )
        )
        status, body = _read_response(sock)  # nothing of the body was sent
    assert status == 413
    assert b"larger than 2097152 bytes" in body


def test_bodies_under_the_limit_reach_the_app(server: tuple[int, int]) -> None:
    port, _ = server
    status, body, _ = _exchange(
        port, "POST", "/api/jobs/requests", [b"{}"], {"Content-Type": "application/json"}
    )
    assert status == 401, body  # the API's own answer: no token


def test_artifact_uploads_keep_their_larger_limit(server: tuple[int, int]) -> None:
    port, _ = server
    status, body, sent = _exchange(port, "POST", "/api/artifacts?name=a", _generated(4 * MB))
    assert sent == 4 * MB
    assert status == 401, body  # past the body limit; refused only for want of a token
