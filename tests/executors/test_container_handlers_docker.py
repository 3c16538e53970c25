"""LIST_CONTAINERS / TERMINATE_CONTAINER and the heartbeat container list against a real Docker
engine: a DOCKER task's container shows up in the ant's heartbeat, the queen persists it,
``GET /api/executors`` lists it for its organization only, and ``DELETE`` reaches the ant, which
kills the container (the task then ends and the container is removed)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ants.config import AntConfig
from ants.containers import install_container_handlers
from ants.messaging.inprocess import InProcessTransport
from ants.protocol import (
    ACTION_LIST_CONTAINERS,
    ACTION_TERMINATE_CONTAINER,
    STATUS_COMPLETED,
    STATUS_EXECUTING,
    TaskRequest,
)
from ants.worker import AntWorker
from jobs.queen.resources import ResourceManager

pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db]


def wait_for(check: Any, secs: float = 30.0) -> Any:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def ant(docker_host: str, docker_image: str, tmp_path: Path, in_process_transport: InProcessTransport):  # type: ignore[no-untyped-def]
    transport = in_process_transport
    cfg = AntConfig(
        ant_id=f"dk-api-{uuid.uuid4().hex[:8]}",
        methods=["SHELL", "DOCKER"],
        work_root=tmp_path / "work",
        docker={"host": docker_host, "network_mode": "none"},
    )
    worker = AntWorker(cfg, transport, block_ms=50)
    install_container_handlers(worker)
    yield worker
    worker.cancel_all(shutdown=False)
    worker.shutdown()
    transport.close()


def responses(worker: AntWorker) -> list[Any]:
    return [d.message for d in worker.transport.read_responses("queens", 50, 100)]


def test_heartbeat_api_and_delete_with_a_real_container(
    ant, api, bob_api, alice, docker_image, docker_client
):
    req = TaskRequest(
        task_execution_id=4242, job_request_id=77, task_type="sleepy", method="DOCKER",
        organization_id=str(alice.org_id), spec={"container": {"image": docker_image}, "script": ["sleep 60"]},
    )  # fmt: skip
    ant.transport.send_task(ant.config.ant_id, req)
    assert ant.run_once(block_ms=200) == 1
    assert [r.status for r in wait_for(lambda: responses(ant))] == [STATUS_EXECUTING]

    # the heartbeat lists the running container (the ant's own label filter: this ant's only)
    reg = wait_for(lambda: (r := ant.registration()).containers and r)
    assert len(reg.containers) == 1
    listed = reg.containers[0]
    assert listed["method"] == "DOCKER" and listed["task_execution_id"] == "4242"
    assert listed["organization_id"] == str(alice.org_id) and listed["job_request_id"] == "77"
    cid = listed["id"]

    # LIST_CONTAINERS answers with the same list
    ant.transport.send_task(
        ant.config.ant_id,
        TaskRequest(task_execution_id=0, job_request_id=0, task_type="", action=ACTION_LIST_CONTAINERS),
    )
    ant.run_once(block_ms=200)
    (listing,) = wait_for(lambda: responses(ant))
    assert listing.action == ACTION_LIST_CONTAINERS and listing.status == STATUS_COMPLETED
    assert [c["id"] for c in listing.task_context["containers"]] == [cid]

    # the queen persists it; the API shows it to acme, not to globex
    resources = ResourceManager()
    resources.heard(reg)
    resources.persist()
    assert [c["id"] for c in api.get("/api/executors").json()["Records"]] == [cid]
    assert bob_api.get("/api/executors").json()["TotalRecords"] == 0
    assert bob_api.delete(f"/api/executors/{cid}").status_code == 404

    # DELETE reaches the ant, which kills the container; the task ends, the container goes
    assert api.delete(f"/api/executors/{cid}").status_code == 202
    ant.run_once(block_ms=200)
    got = wait_for(lambda: responses(ant))
    terminate = [r for r in got if r.action == ACTION_TERMINATE_CONTAINER]
    assert terminate and terminate[0].status == STATUS_COMPLETED, got
    final = [r for r in got if r.action != ACTION_TERMINATE_CONTAINER] or wait_for(lambda: responses(ant))
    assert final[0].task_execution_id == 4242 and final[0].status != STATUS_EXECUTING
    wait_for(
        lambda: not docker_client.containers.list(
            all=True, filters={"label": "formicary.io/task-execution-id=4242"}
        )
    )
    assert wait_for(lambda: ant.registration().containers == [] or None, 10) is True
