"""A standalone cluster (queen, log writer and one SHELL ant in threads) for the limits tests."""

import pytest

from ants.messaging import InProcessTransport
from jobs.queen import messaging
from tests.engine.harness import Harness


@pytest.fixture
def standalone(tmp_path, transactional_db):  # type: ignore[no-untyped-def]
    harness = Harness(InProcessTransport(), tmp_path / "ants").start()
    messaging._transport = harness.transport
    harness.add_ant("ant-limits", concurrency=4)
    yield harness
    harness.stop()
    messaging.reset_transport()
