"""/api/ants and /api/executors: what each organization sees of shared ants and containers.

State is set up as the product does it: ants' heartbeats (``AntRegistration`` messages) go
through the queen's ResourceManager, which persists them; job requests through the API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ants.config import AntConfig
from ants.containers import install_container_handlers
from ants.messaging.inprocess import InProcessTransport
from ants.models import AntRegistration as AntRow
from ants.protocol import ACTION_TERMINATE_CONTAINER, STATUS_COMPLETED, STATUS_FAILED, AntRegistration
from ants.worker import AntWorker
from jobs.queen.resources import ResourceManager
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: ants-api-job
tasks:
- task_type: only
  method: SHELL
  script: [echo hi]
"""


def submit(client: Any) -> int:
    assert upload(client, DEFINITION).status_code == 201
    resp = client.post("/api/jobs/requests", {"job_type": "ants-api-job"}, format="json")
    assert resp.status_code == 201, resp.content
    return int(resp.json()["id"])


def container(cid: str, org_id: int, request_id: int, method: str = "DOCKER") -> dict[str, Any]:
    return {
        "id": cid, "name": f"formicary-{cid}", "method": method, "image": "busybox", "state": "RUNNING",
        "started_at": time.time(), "role": "main", "task_execution_id": "7", "attempt": "1",
        "job_request_id": str(request_id), "task_type": "only", "organization_id": str(org_id),
    }  # fmt: skip


def heartbeat(rm: ResourceManager, ant_id: str, **fields: Any) -> None:
    rm.heard(AntRegistration(ant_id=ant_id, methods=["SHELL", "DOCKER"], tags=["linux"], **fields))


@pytest.fixture
def world(api, bob_api, alice, bob) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    acme_req, globex_req = submit(api), submit(bob_api)
    rm = ResourceManager()
    heartbeat(
        rm, "shared-1", max_capacity=4, current_load=2,
        allocations={str(acme_req): {"only": "EXECUTING"}, str(globex_req): {"only": "EXECUTING"}},
        containers=[container("aaaaaaaaaaaa", alice.org_id, acme_req), container("bbbbbbbbbbbb", bob.org_id, globex_req)],
    )  # fmt: skip
    heartbeat(rm, "shared-2")
    heartbeat(
        rm, "acme-only", organization_id=str(alice.org_id), allocations={str(acme_req): {"only": "EXECUTING"}},
        containers=[container("acme-pod-1", alice.org_id, acme_req, "KUBERNETES")],
    )  # fmt: skip
    rm.persist()  # new ants: written at the queen's next pass
    return {"acme_req": acme_req, "globex_req": globex_req, "rm": rm}


@pytest.fixture
def transport(in_process_transport: InProcessTransport) -> InProcessTransport:
    return in_process_transport


# -- /api/ants --------------------------------------------------------------------------------


def test_ants_list_is_paginated_and_hides_dedicated_ants_of_others(api, bob_api, world) -> None:
    body = api.get("/api/ants").json()
    assert body["TotalRecords"] == 3 and body["Page"] == 0 and body["TotalPages"] == 1
    assert [a["ant_id"] for a in body["Records"]] == ["acme-only", "shared-1", "shared-2"]
    first = body["Records"][1]
    for key in ("tags", "methods", "max_capacity", "current_load", "total_executed", "alive",
                "last_heartbeat_at", "ant_started_at", "allocations"):  # fmt: skip
        assert key in first, key
    assert first["max_capacity"] == 4 and first["current_load"] == 2 and first["alive"] is True

    bob_body = bob_api.get("/api/ants").json()
    assert [a["ant_id"] for a in bob_body["Records"]] == ["shared-1", "shared-2"]
    assert "acme-only" not in bob_api.get("/api/ants").content.decode()

    page = api.get("/api/ants?pageSize=2&page=1").json()
    assert page["TotalRecords"] == 3 and page["TotalPages"] == 2 and len(page["Records"]) == 1


def test_the_ants_page_and_the_dashboard_hide_dedicated_ants_of_others(client, alice, bob, world) -> None:
    """The web pages read the same selector as the API (issue 16: the page listed them all)."""
    client.force_login(bob.user)
    for url in ("/ants", "/"):
        page = client.get(url).content.decode()
        assert "shared-1" in page and "acme-only" not in page, url
    client.force_login(alice.user)
    assert "acme-only" in client.get("/ants").content.decode()


def test_allocations_show_only_the_callers_requests(api, bob_api, world) -> None:
    acme, globex = str(world["acme_req"]), str(world["globex_req"])
    alice_view = api.get("/api/ants/shared-1").json()
    assert alice_view["allocations"] == {acme: {"only": "EXECUTING"}}
    bob_view = bob_api.get("/api/ants/shared-1").json()
    assert bob_view["allocations"] == {globex: {"only": "EXECUTING"}}
    for ant in bob_api.get("/api/ants").json()["Records"]:
        assert acme not in ant["allocations"], ant["ant_id"]


def test_superuser_sees_every_ant_and_allocation(bob, bob_api, world) -> None:
    bob.user.is_superuser = True
    bob.user.save()
    body = bob_api.get("/api/ants").json()
    assert body["TotalRecords"] == 3
    shared = next(a for a in body["Records"] if a["ant_id"] == "shared-1")
    assert set(shared["allocations"]) == {str(world["acme_req"]), str(world["globex_req"])}


def test_ant_detail_by_ant_id_or_row_id_and_404_for_others_dedicated(api, bob_api, world) -> None:
    row = AntRow.objects.get(ant_id="acme-only")
    assert api.get("/api/ants/acme-only").json()["id"] == row.pk
    assert api.get(f"/api/ants/{row.pk}").json()["ant_id"] == "acme-only"
    for url in ("/api/ants/acme-only", f"/api/ants/{row.pk}", "/api/ants/nope"):
        resp = bob_api.get(url)
        assert resp.status_code == 404 and "acme-only" not in resp.content.decode()


def test_ants_filters(api, world) -> None:
    AntRow.objects.filter(ant_id="shared-2").update(alive=False)
    assert [a["ant_id"] for a in api.get("/api/ants?alive=false").json()["Records"]] == ["shared-2"]
    assert api.get("/api/ants?alive=true").json()["TotalRecords"] == 2
    assert api.get("/api/ants?method=docker").json()["TotalRecords"] == 3
    assert api.get("/api/ants?method=KUBERNETES").json()["TotalRecords"] == 0
    assert api.get("/api/ants?tag=linux").json()["TotalRecords"] == 3
    assert api.get("/api/ants?tag=gpu").json()["TotalRecords"] == 0
    bad = api.get("/api/ants?alive=maybe")
    assert bad.status_code == 400 and "alive" in bad.content.decode()


def test_ants_need_a_token(anon_api, world) -> None:
    assert anon_api.get("/api/ants").status_code in (401, 403)
    assert anon_api.get("/api/executors").status_code in (401, 403)


# -- /api/executors ---------------------------------------------------------------------------


def test_executors_list_only_the_callers_containers(api, bob_api, world, alice) -> None:
    body = api.get("/api/executors").json()
    assert body["TotalRecords"] == 2
    assert {(c["id"], c["ant_id"], c["method"]) for c in body["Records"]} == {
        ("aaaaaaaaaaaa", "shared-1", "DOCKER"),
        ("acme-pod-1", "acme-only", "KUBERNETES"),
    }
    rec = next(c for c in body["Records"] if c["id"] == "aaaaaaaaaaaa")
    assert rec["job_request_id"] == str(world["acme_req"]) and rec["organization_id"] == str(alice.org_id)
    bob_body = bob_api.get("/api/executors").json()
    assert [c["id"] for c in bob_body["Records"]] == ["bbbbbbbbbbbb"]
    text = bob_api.get("/api/executors").content.decode()
    assert "aaaaaaaaaaaa" not in text and "acme-pod-1" not in text

    assert [c["id"] for c in api.get("/api/executors?method=kubernetes").json()["Records"]] == ["acme-pod-1"]
    assert api.get("/api/executors?ant_id=shared-1").json()["TotalRecords"] == 1
    assert api.get(f"/api/executors?job_request_id={world['acme_req']}").json()["TotalRecords"] == 2
    assert api.get("/api/executors?pageSize=1").json()["TotalPages"] == 2


def test_executor_detail_and_404_for_another_organizations_container(api, bob_api, world, transport) -> None:
    assert api.get("/api/executors/aaaaaaaaaaaa").json()["ant_id"] == "shared-1"
    # a full Docker id finds the short one the ant reports
    assert api.get("/api/executors/aaaaaaaaaaaa" + "0" * 52).status_code == 200
    for method in ("get", "delete"):
        resp = getattr(bob_api, method)("/api/executors/aaaaaaaaaaaa")
        assert resp.status_code == 404 and "shared-1" not in resp.content.decode()
    assert api.get("/api/executors/bbbbbbbbbbbb").status_code == 404
    assert transport.read_tasks("shared-1", "c", 0, 10) == []  # nothing was sent to the ant


def test_containers_of_ants_that_went_silent_are_not_listed(api, world) -> None:
    AntRow.objects.filter(ant_id="shared-1").update(alive=False)
    assert [c["id"] for c in api.get("/api/executors").json()["Records"]] == ["acme-pod-1"]
    assert api.get("/api/executors/aaaaaaaaaaaa").status_code == 404


def test_a_later_heartbeat_replaces_the_container_list(api, world) -> None:
    heartbeat(world["rm"], "shared-1", containers=[])
    world["rm"].persist(force=True)  # the next batch
    assert [c["id"] for c in api.get("/api/executors").json()["Records"]] == ["acme-pod-1"]


class FakeContainerExecutor:
    """Stands in for DockerExecutor/KubernetesExecutor on the ant (listing and killing)."""

    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.containers = containers
        self.terminated: list[tuple[str, str]] = []

    def list_containers(self, organization_id: str = "") -> list[dict[str, Any]]:
        return [c for c in self.containers if not organization_id or c["organization_id"] == organization_id]

    def terminate(self, container_id: str, organization_id: str = "") -> bool:
        if not any(c["id"] == container_id for c in self.list_containers(organization_id)):
            return False
        self.terminated.append((container_id, organization_id))
        self.containers = [c for c in self.containers if c["id"] != container_id]
        return True


def test_delete_sends_terminate_container_to_the_ant_and_the_ant_kills_it(
    api, world, transport, alice, tmp_path
) -> None:
    fake = FakeContainerExecutor([container("aaaaaaaaaaaa", alice.org_id, world["acme_req"])])
    cfg = AntConfig(ant_id="shared-1", methods=["SHELL", "DOCKER"], work_root=tmp_path)
    worker = AntWorker(cfg, transport, executor_lookup=lambda method, config: fake, block_ms=10)
    install_container_handlers(worker)
    # the heartbeat carries the ant's containers (compact form)
    assert [c["id"] for c in worker.registration().containers] == ["aaaaaaaaaaaa"]

    resp = api.delete("/api/executors/aaaaaaaaaaaa")
    assert resp.status_code == 202
    assert resp.json() == {"id": "aaaaaaaaaaaa", "ant_id": "shared-1", "status": "TERMINATE_REQUESTED"}
    try:
        assert worker.run_once(block_ms=100) == 1
        assert fake.terminated == [("aaaaaaaaaaaa", str(alice.org_id))]
        replies = transport.read_responses("queens", 100, 10)
        assert len(replies) == 1
        reply = replies[0].message
        assert reply.action == ACTION_TERMINATE_CONTAINER and reply.status == STATUS_COMPLETED
        assert reply.job_request_id == world["acme_req"] and reply.ant_id == "shared-1"
        # the next heartbeat no longer lists it
        assert worker.registration().containers == []
    finally:
        worker.shutdown()


def test_the_ant_refuses_to_terminate_another_organizations_container(
    world, transport, alice, bob, tmp_path
) -> None:
    from ants.containers import terminate_request

    fake = FakeContainerExecutor([container("aaaaaaaaaaaa", alice.org_id, world["acme_req"])])
    cfg = AntConfig(ant_id="shared-1", methods=["DOCKER"], work_root=tmp_path)
    worker = AntWorker(cfg, transport, executor_lookup=lambda method, config: fake, block_ms=10)
    install_container_handlers(worker)
    # a forged request naming bob's organization: the container's label says acme
    req = terminate_request({"id": "aaaaaaaaaaaa", "ant_id": "shared-1"}, organization_id=str(bob.org_id))
    transport.send_task("shared-1", req)
    try:
        worker.run_once(block_ms=100)
        reply = transport.read_responses("queens", 100, 10)[0].message
        assert reply.status == STATUS_FAILED and reply.error_code == "ERR_NOT_FOUND"
        assert fake.terminated == []
    finally:
        worker.shutdown()
