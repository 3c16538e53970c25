"""The request page's reads of parallel work: a fan-out step's instances grouped under it (never
tasks of their own), counted per state in the database and drawn up to 200, the timeline with
instances and earlier attempts at its own URL, the request's DOT, and another organization's 404."""

from typing import Any

import pytest
from django.test import Client

from jobs.domain import transitions
from jobs.fan_out_selectors import CHIPS, fan_out_counts, fan_out_groups
from jobs.states import TaskState
from tests.ui.fan_out_world import fan_out_request, finish, start

pytestmark = pytest.mark.django_db


def login(member: Any) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


def _retry(task_id: int, request_id: int) -> None:
    """A failed attempt sent again, as a task ``retry`` does: the row keeps it in earlier_attempts."""
    finish(task_id, request_id, TaskState.FAILED, exit_code="1")
    assert transitions.task_requeue(
        task_id, request_id, from_states=[TaskState.FAILED], not_before=None, count_retry=True
    )


def test_instances_are_grouped_under_their_step(alice):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=3)
    rid, (i0, i1, i2) = world.request.pk, world.instances
    finish(i0, rid, TaskState.COMPLETED)
    finish(i1, rid, TaskState.FAILED, exit_code="3")
    start(i2, rid)
    client = login(alice)

    state = client.get(f"/jobs/requests/{rid}/page.json").json()
    assert [t["task_type"] for t in state["tasks"]] == ["list", "deploy", "report"]
    (group,) = state["fan_outs"]
    assert (group["step"], group["state"], group["total"], group["more"]) == ("deploy", "EXECUTING", 3, 0)
    assert group["counts"] == {"COMPLETED": 1, "FAILED": 1, "EXECUTING": 1}
    assert group["label"] == "× region in Regions · max 2"
    chips = group["instances"]
    assert [(c["task_type"], c["index"], c["state"], c["exit_code"]) for c in chips] == [
        ("deploy-fo-0", 0, "COMPLETED", "0"), ("deploy-fo-1", 1, "FAILED", "3"), ("deploy-fo-2", 2, "EXECUTING", ""),
    ]  # fmt: skip
    # each chip carries what opens its log: its row and attempt
    assert (
        chips[1]["attempts"][-1]["task_execution_id"] == i1 and chips[1]["attempts"][-1]["row_attempt"] == 1
    )

    # the events socket's snapshot (and state.json) name the graph's tasks only
    snapshot = client.get(f"/jobs/requests/{rid}/state.json").json()
    assert [t["task_type"] for t in snapshot["tasks"]] == ["list", "deploy"]

    html = client.get(f"/jobs/requests/{rid}").content.decode()
    assert 'id="fan-outs"' in html
    assert 'data-task="deploy-fo-' not in html  # no table row, log tab or graph node of their own
    assert "<title>deploy-fo-" not in html
    assert "× region in Regions · max 2" in html  # the step's node names its item and limit


def test_a_thousand_instances_are_counted_and_200_drawn(alice, django_assert_max_num_queries):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=1000)
    rid = world.request.pk
    transitions.tasks_dispatch("ant-ui", {pk: rid for pk in world.instances[:600]})
    finish(world.instances[999], rid, TaskState.FAILED, exit_code="1")
    assert fan_out_counts(execution_id=world.execution.pk) == {
        "deploy": {"STARTED": 600, "READY": 399, "FAILED": 1}
    }
    group = fan_out_groups(execution_id=world.execution.pk)["deploy"]
    assert (group.total, len(group.shown), group.more) == (1000, CHIPS, 800)
    assert [i.index for i in group.shown] == list(range(CHIPS))

    client = login(alice)
    client.get(f"/jobs/requests/{rid}/page.json")  # session and caches warm
    with django_assert_max_num_queries(12):  # whatever the number of instances
        state = client.get(f"/jobs/requests/{rid}/page.json").json()
    (fan_out,) = state["fan_outs"]
    assert (fan_out["total"], len(fan_out["instances"]), fan_out["more"]) == (1000, 200, 800)
    lanes = next(b for b in state["timeline"]["bars"] if b["task_type"] == "deploy")["instances"]
    assert (lanes["total"], len(lanes["bars"]), lanes["more"]) == (1000, 200, 800)
    assert client.get(f"/jobs/requests/{rid}").status_code == 200
    # the requests list's strip of task states draws the graph's tasks, not 1,000 instances
    listing = client.get("/jobs/requests").content.decode()
    assert 'aria-label="tasks: list COMPLETED, deploy EXECUTING"' in listing


def test_the_timeline_shows_instances_and_earlier_attempts(alice):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=2)
    rid, (i0, i1) = world.request.pk, world.instances
    _retry(i0, rid)
    finish(i0, rid, TaskState.COMPLETED)
    start(i1, rid)
    client = login(alice)

    bars = client.get(f"/jobs/requests/{rid}/page.json").json()["timeline"]["bars"]
    assert [b["task_type"] for b in bars] == ["list", "deploy"]  # report has not started
    assert bars[0]["instances"] is None
    lanes = bars[1]["instances"]
    assert [(b["task_type"], b["state"]) for b in lanes["bars"]] == [
        ("deploy-fo-0", "COMPLETED"),
        ("deploy-fo-1", "EXECUTING"),
    ]
    (earlier,) = lanes["bars"][0]["attempts"]
    assert earlier["state"] == "FAILED" and earlier["started_at"] and earlier["label"] == "attempt 1: FAILED"
    assert lanes["bars"][1]["ended_at"] is None  # running: drawn up to now
    # the instance's chip lists both attempts, so the log view offers each
    chip = client.get(f"/jobs/requests/{rid}/page.json").json()["fan_outs"][0]["instances"][0]
    assert [(a["row_attempt"], a["state"]) for a in chip["attempts"]] == [(1, "FAILED"), (2, "COMPLETED")]

    # a task of the graph retried within the run: its first attempt sits on its row too
    report = transitions.task_ready(world.execution, "report", "SHELL")
    _retry(report.pk, rid)
    finish(report.pk, rid, TaskState.COMPLETED)
    bars = client.get(f"/jobs/requests/{rid}/page.json").json()["timeline"]["bars"]
    report_bar = next(b for b in bars if b["task_type"] == "report")
    assert [a["state"] for a in report_bar["attempts"]] == ["FAILED"]
    assert report_bar["state"] == "COMPLETED"


def test_the_timeline_has_its_own_address(alice, bob):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=1)
    rid = world.request.pk
    html = login(alice).get(f"/jobs/requests/{rid}/timeline").content.decode()
    assert 'data-initial-view="timeline"' in html
    assert 'data-view-pane="graph" hidden' in html and 'data-view-pane="timeline" >' in html
    other = login(bob)
    for url in (f"/jobs/requests/{rid}/timeline", f"/jobs/requests/{rid}", f"/jobs/requests/{rid}/page.json"):
        assert other.get(url).status_code == 404, url


def test_the_requests_dot_counts_instances_and_draws_no_node_for_them(alice, api):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=3)
    rid, (i0, i1, i2) = world.request.pk, world.instances
    finish(i0, rid, TaskState.COMPLETED)
    finish(i1, rid, TaskState.COMPLETED)
    start(i2, rid)
    dot = api.get(f"/api/jobs/requests/{rid}/dot").content.decode()
    assert '"deploy" [label="deploy\\n× region in Regions · max 2\\n3 items: 2 COMPLETED, 1 EXECUTING"' in dot
    assert "shape=doubleoctagon" in dot and "deploy-fo-" not in dot
    definition_dot = api.get("/api/jobs/definitions/regions/dot").content.decode()
    assert '"deploy" [label="deploy\\n× region in Regions · max 2", shape=doubleoctagon];' in definition_dot
