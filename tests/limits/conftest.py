"""A standalone cluster (queen, log writer and one SHELL ant in threads) for the limits tests."""

import pytest

from ants.messaging import InProcessTransport
from tests.engine.harness import Harness


@pytest.fixture
def standalone(tmp_path, transactional_db, use_transport):  # type: ignore[no-untyped-def]
    harness = Harness(use_transport(InProcessTransport()), tmp_path / "ants").start()
    harness.add_ant("ant-limits", concurrency=4)
    yield harness
    harness.stop()
