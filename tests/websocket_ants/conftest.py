"""A real web server (uvicorn on ``formicary_site.asgi:application``, in a thread) next to a queen
(tests/engine/harness.py) over one in-process transport: the standalone shape, where websocket
ants connect to the web process and their workers share its transport with the queen."""

import json
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from ants.messaging import InProcessTransport
from tests.conftest import served_site
from tests.engine.harness import Harness

# channels.testing imports its daphne live-server helper at import time; only
# WebsocketCommunicator is used here (as in tests/consumers/conftest.py).
try:
    import daphne.testing  # noqa: F401
except ImportError:
    _stub = types.ModuleType("daphne.testing")
    _stub.DaphneProcess = object  # type: ignore[attr-defined]
    sys.modules.setdefault("daphne", types.ModuleType("daphne"))
    sys.modules["daphne.testing"] = _stub


@dataclass
class WebCluster:
    harness: Harness
    url: str

    def ant(self, token: str, ant_id: str, tags: list[str], **extra: Any) -> ClientConnection:
        """A registered websocket ant (the few lines a user writes)."""
        ws = connect(f"{self.url}?token={token}", open_timeout=10)
        ws.send(json.dumps({"ant_id": ant_id, "tags": tags, "methods": ["WEBSOCKET"], **extra}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["type"] == "registered", reply
        self.wait_for_ant(reply["ant_id"])
        return ws

    def wait_for_ant(self, ant_id: str, timeout: float = 10.0) -> None:
        """Until the queen has heard the ant's first heartbeat (so tasks route to it at once)."""
        deadline = time.monotonic() + timeout
        while ant_id not in dict(self.harness.queen.resources.ants):
            assert time.monotonic() < deadline, f"the queen never heard of {ant_id}"
            time.sleep(0.02)


@pytest.fixture
def web_cluster(tmp_path: Path, transactional_db, settings, use_transport) -> Iterator[WebCluster]:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.FORMICARY_WS_ANT_HEARTBEAT_SECS = 0.5
    harness = Harness(use_transport(InProcessTransport()), tmp_path).start()
    try:
        with served_site() as port:
            yield WebCluster(harness=harness, url=f"ws://127.0.0.1:{port}/ws/ants")
    finally:
        harness.stop()
