"""A standalone cluster (queen and ants in threads over the in-process transport, as in
tests/engine) for running example definitions end to end, plus a DOCKER ant when an engine and
the local test image are there (tests/executors/conftest.py finds or starts them)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from ants.artifact_hooks import install_artifact_hooks
from ants.config import AntConfig
from ants.messaging import InProcessTransport
from ants.worker import AntWorker
from artifacts.storage import ant_store
from tests.engine.harness import Harness
from tests.executors.conftest import docker_host, docker_image  # noqa: F401 - fixtures used here


@pytest.fixture
def harness(tmp_path: Path, transactional_db, use_transport) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    """A queen and one SHELL/HTTP ant; FORK_JOB and AWAIT_FORKED_JOB are the queen's own."""
    h = Harness(use_transport(InProcessTransport()), tmp_path).start()
    h.add_ant("ant-shell", concurrency=4)
    yield h
    h.stop()


@pytest.fixture
def docker_ant(harness: Harness, docker_host: str, docker_image: str, tmp_path: Path) -> AntWorker:  # noqa: F811
    """An ant offering DOCKER on the test engine (no network: the engine runs without a bridge)."""
    config = AntConfig(ant_id="ant-docker", methods=["DOCKER"], concurrency=2, heartbeat_secs=0.5,
                       work_root=tmp_path / "ant-docker",
                       docker={"host": docker_host, "network_mode": "none", "pull_policy": "if_not_present"})  # fmt: skip
    ant = AntWorker(config, harness.transport, block_ms=100)
    install_artifact_hooks(ant, ant_store())
    harness.ants[config.ant_id] = ant
    harness._spawn(ant.run_forever, config.ant_id)
    ant.heartbeat()
    return ant
