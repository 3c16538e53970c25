"""Fixtures for the ant tests: a Redis server and one parametrized transport per backend.

Uses ``REDIS_URL`` when set; otherwise starts a throwaway ``redis-server`` on a free port (no
persistence) in a temporary directory and stops it afterwards. Redis tests are skipped when
neither is available. Every test gets its own key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ants.messaging.base import Transport
from ants.messaging.inprocess import InProcessTransport
from tests.conftest import free_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Backend:
    """A messaging backend: ``transport`` plus ``peer()`` for another process's view of it."""

    kind: str
    transport: Transport
    make_peer: Callable[[], Transport]
    _peers: list[Transport] = field(default_factory=list)

    def peer(self) -> Transport:
        t = self.make_peer()
        self._peers.append(t)
        return t

    def raw_add(self, key: str, payload: bytes | str) -> None:
        self.transport.raw_add(key, payload)  # type: ignore[attr-defined]

    def close(self) -> None:
        for t in [*self._peers, self.transport]:
            t.close()


# "redis-sealed": the same semantics with message encryption on (ants.messaging.sealing)
@pytest.fixture(params=["inprocess", "redis", "redis-sealed"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "inprocess":
        t = InProcessTransport()
        # In one process every component shares the single in-memory transport.
        b = Backend("inprocess", t, lambda: t)
        yield b
        t.close()
        return
    url = request.getfixturevalue("redis_url")
    if url is None:
        pytest.skip("no redis-server binary and no REDIS_URL")
    from ants.messaging.redis_streams import RedisStreamsTransport
    from ants.messaging.sealing import MessageSealer

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    sealer = MessageSealer(secret=uuid.uuid4().hex) if request.param == "redis-sealed" else None
    t = RedisStreamsTransport(url, prefix=prefix, sealer=sealer)
    b = Backend("redis", t, lambda: RedisStreamsTransport(url, prefix=prefix, sealer=sealer))
    try:
        yield b
    finally:
        keys = list(t.redis.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            t.redis.delete(*keys)
        b.close()


@pytest.fixture
def transport(backend: Backend) -> Transport:
    return backend.transport
