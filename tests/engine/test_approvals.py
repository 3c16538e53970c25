"""Manual approval end to end: a queen and an ant as processes over Redis and PostgreSQL, reviews
through ``POST /api/jobs/requests/{id}/review``: approve, reject routed by ``on_exit_code``, a
quorum of two, unanimity, one vote per person, the requester barred, the SLA's AUTO_REJECT and
ESCALATE (mail read from a real SMTP server), no ant slot held while waiting, a queen killed
during the wait, another organization's user, cancel."""

import time

import pytest
from rest_framework.test import APIClient

from jobs.models import ApprovalReview, JobRequest, TaskExecution
from jobs.services.requests import request_submit
from orgs import services as org_services
from tests.conftest import Member, upload
from tests.engine.counts import kept, recounted
from tests.engine.harness import wait_for_state

pytestmark = pytest.mark.postgres_only

GATE = """\
job_type: {job_type}
max_concurrency: 1
tasks:
- task_type: build
  method: SHELL
  script: ["echo built"]
  on_completed: approve
- task_type: approve
  method: MANUAL
  approval_policy:
{policy}
  on_exit_code:
    APPROVED: deploy
    REJECTED: rejected
- task_type: deploy
  method: SHELL
  script: ["echo deployed"]
- task_type: rejected
  method: SHELL
  script: ["echo rejected"]
"""
QUICK = """\
job_type: quick
tasks:
- task_type: only
  method: SHELL
  script: ["echo quick"]
"""


def gate(job_type: str, **policy: object) -> str:
    lines = "\n".join(f"    {k}: {v}" for k, v in (policy or {"min_approvals": 1}).items())
    return GATE.format(job_type=job_type, policy=lines)


def person(username: str, org: str = "acme", role: str = "admin") -> tuple[Member, APIClient]:
    user = org_services.user_ensure(username=username, org_name=org, create=True)
    user.role = role
    user.save()
    issued = org_services.token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plain}")
    return Member(user=user, token=issued.plain, org_id=user.organization_id), client


def start(processes, ant_concurrency: int = 1) -> None:  # type: ignore[no-untyped-def]
    processes.start_queen()
    processes.start_ant("ant-a", ["a"], concurrency=ant_concurrency)
    processes.wait_ready()


def submit(api: APIClient, member: Member, text: str) -> JobRequest:
    resp = upload(api, text)
    assert resp.status_code in (200, 201), resp.content
    return request_submit(org_id=member.org_id, user=member.user, job_type=resp.json()["job_type"])


def waiting(request: JobRequest, timeout: float = 60.0) -> JobRequest:
    found = wait_for_state(request.pk, ["MANUAL_APPROVAL_REQUIRED", "FAILED", "COMPLETED"], timeout=timeout)
    assert found.job_state == "MANUAL_APPROVAL_REQUIRED", (found.job_state, found.error_message)
    return found


def review(client: APIClient, request: JobRequest, status: str, comments: str = "", **overrides: object):  # type: ignore[no-untyped-def]
    request.refresh_from_db()
    body = {"execution_id": request.last_execution_id, "task_type": "approve", "status": status,
            "comments": comments, **overrides}  # fmt: skip
    return client.post(f"/api/jobs/requests/{request.pk}/review", body, format="json")


def states(request: JobRequest) -> dict[str, tuple[str, str]]:
    return {
        t.task_type: (t.task_state, t.exit_code)
        for t in TaskExecution.objects.filter(job_execution__job_request=request)
    }


def test_approve_reject_quorum_unanimity_and_who_may_vote(processes, api, alice, bob_api):  # type: ignore[no-untyped-def]
    start(processes)
    _, carol = person("carol")
    _, dave = person("dave")
    _, viewer = person("vic", role="viewer")

    # one approval: the task ends APPROVED and on_exit_code goes on to deploy
    approved = waiting(submit(api, alice, gate("gate-one")))
    assert approved.state_message == "waiting for approval of task approve"
    assert states(approved)["approve"] == ("MANUAL_APPROVAL_REQUIRED", "")
    assert bob_api.post(f"/api/jobs/requests/{approved.pk}/review", {}, format="json").status_code == 404
    assert viewer.post(f"/api/jobs/requests/{approved.pk}/review", {}, format="json").status_code == 403
    bad = review(carol, approved, "MAYBE")
    assert bad.status_code == 400 and "status" in bad.json()["error"], bad.content
    bad = review(carol, approved, "APPROVED", execution_id=approved.last_execution_id + 1000)
    assert bad.status_code == 400 and "execution_id" in bad.json()["error"], bad.content
    bad = review(carol, approved, "APPROVED", task_type="build")
    assert bad.status_code == 400 and "task_type" in bad.json()["error"], bad.content
    ok = review(carol, approved, "APPROVED", "ship it")
    assert ok.status_code == 201, ok.content
    assert ok.json()["username"] == "carol" and ok.json()["created_at"]
    done = wait_for_state(approved.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert states(done) == {"build": ("COMPLETED", "0"), "approve": ("COMPLETED", "APPROVED"),
                            "deploy": ("COMPLETED", "0")}  # fmt: skip
    late = review(dave, done, "APPROVED")
    assert late.status_code == 400 and "not waiting" in late.json()["error"], late.content

    # a rejection: routed by on_exit_code to `rejected`, and the job completes that way
    rejected = waiting(submit(api, alice, gate("gate-one")))
    assert review(carol, rejected, "REJECTED", "not today").status_code == 201
    done = wait_for_state(rejected.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert states(done)["approve"] == ("COMPLETED", "REJECTED") and states(done)["rejected"][0] == "COMPLETED"
    assert "deploy" not in states(done)

    # two approvals needed; a person cannot vote twice; the requester is barred by the policy
    quorum = waiting(submit(api, alice, gate("gate-two", min_approvals=2, allow_self_approval="false")))
    assert review(carol, quorum, "APPROVED").status_code == 201
    twice = review(carol, quorum, "APPROVED")
    assert twice.status_code == 409 and "already reviewed" in twice.json()["error"], twice.content
    own = review(api, quorum, "APPROVED")
    assert own.status_code == 400 and "requester" in own.json()["error"], own.content
    time.sleep(1)  # the queen has had passes: one approval of two still waits
    assert JobRequest.objects.get(pk=quorum.pk).job_state == "MANUAL_APPROVAL_REQUIRED"
    assert review(dave, quorum, "APPROVED").status_code == 201
    done = wait_for_state(quorum.pk, timeout=60)
    assert done.job_state == "COMPLETED" and states(done)["approve"] == ("COMPLETED", "APPROVED")
    assert sorted(ApprovalReview.objects.filter(job_request=quorum).values_list("username", flat=True)) == [
        "carol", "dave",
    ]  # fmt: skip

    # unanimity: one rejection among approvals rejects
    unanimous = waiting(submit(api, alice, gate("gate-all", min_approvals=2, require_unanimous="true")))
    assert review(carol, unanimous, "APPROVED").status_code == 201
    assert review(dave, unanimous, "REJECTED", "no").status_code == 201
    done = wait_for_state(unanimous.pk, timeout=60)
    assert states(done)["approve"] == ("COMPLETED", "REJECTED") and "deploy" not in states(done)

    listed = carol.get(f"/api/jobs/requests/{unanimous.pk}/review").json()
    assert [(r["username"], r["status"]) for r in listed] == [("carol", "APPROVED"), ("dave", "REJECTED")]


def test_rejection_fails_the_task_without_a_route(processes, api, alice):  # type: ignore[no-untyped-def]
    start(processes)
    _, carol = person("carol")
    text = "job_type: plain-gate\ntasks:\n- task_type: approve\n  method: MANUAL\n"
    request = waiting(submit(api, alice, text))
    assert review(carol, request, "REJECTED", "no").status_code == 201
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "FAILED" and states(done)["approve"] == ("FAILED", "REJECTED")
    assert kept(alice.org_id) == recounted(alice.org_id) and sum(kept(alice.org_id).values()) == 1


def test_waiting_holds_no_ant_slot_nor_max_concurrency_and_cancel_works(processes, api, alice):  # type: ignore[no-untyped-def]
    start(processes, ant_concurrency=1)
    # two requests of a max_concurrency 1 job type both reach the wait: waiting is not running
    first = waiting(submit(api, alice, gate("gate-slot")))
    second = waiting(submit(api, alice, gate("gate-slot")))
    # meanwhile another job runs on the only slot of the only ant
    quick = submit(api, alice, QUICK)
    assert wait_for_state(quick.pk, timeout=60).job_state == "COMPLETED"
    assert not TaskExecution.objects.filter(task_state="MANUAL_APPROVAL_REQUIRED").exclude(ant_id="").exists()
    cancel = api.post(f"/api/jobs/requests/{first.pk}/cancel")
    assert cancel.status_code == 200, cancel.content
    assert JobRequest.objects.get(pk=first.pk).job_state == "CANCELLED"
    assert states(first)["approve"][0] == "CANCELLED"
    assert JobRequest.objects.get(pk=second.pk).job_state == "MANUAL_APPROVAL_REQUIRED"
    # the quick job's end (the queen) and the cancel (the API) are counted
    assert kept(alice.org_id) == recounted(alice.org_id) and sum(kept(alice.org_id).values()) == 2


def test_a_queen_killed_during_the_wait_then_approved_completes_once(processes, api, alice):  # type: ignore[no-untyped-def]
    start(processes)
    _, carol = person("carol")
    request = waiting(submit(api, alice, gate("gate-kill")))
    processes.kill("queen")
    assert review(carol, request, "APPROVED").status_code == 201  # the review needs no queen
    processes.start_queen("queen-2", queen_id="queen-test-2")
    processes.wait_ready(["queen-2"])
    done = wait_for_state(request.pk, timeout=90)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    tasks = TaskExecution.objects.filter(job_execution__job_request=request)
    assert sorted(t.task_type for t in tasks) == ["approve", "build", "deploy"]
    assert {t.task_type: t.attempt for t in tasks} == {"approve": 1, "build": 1, "deploy": 1}
    assert done.executions.count() == 1


def test_sla_auto_reject_and_escalate_once(processes, api, alice, smtp_server):  # type: ignore[no-untyped-def]
    processes.env["EMAIL_URL"] = smtp_server.url
    processes.env["FORMICARY_OUTBOUND_IN_PROCESS"] = "true"
    start(processes)
    _, carol = person("carol")
    rejected = submit(api, alice, gate("gate-sla", sla_deadline="2s", timeout_action="AUTO_REJECT"))
    escalated = submit(api, alice, gate(
        "gate-esc", sla_deadline="2s", timeout_action="ESCALATE", escalation_recipients='"boss@example.com, #ops"',
        escalation_message='"Please look at the release"',
    ))  # fmt: skip
    done = wait_for_state(rejected.pk, timeout=60)
    assert states(done)["approve"] == ("COMPLETED", "REJECTED") and "rejected" in states(done)
    (auto,) = ApprovalReview.objects.filter(job_request=rejected)
    assert auto.status == "AUTO_REJECTED" and auto.user_id is None

    mail = smtp_server.wait_for("boss@example.com", timeout=60)
    assert "Please look at the release" in mail.get_content()
    assert f"#{escalated.pk}" in mail["Subject"]
    time.sleep(3)  # housekeeping passes after the deadline: still one escalation, still waiting
    assert len(smtp_server.messages()) == 1
    assert JobRequest.objects.get(pk=escalated.pk).job_state == "MANUAL_APPROVAL_REQUIRED"
    assert list(ApprovalReview.objects.filter(job_request=escalated).values_list("status", flat=True)) == [
        "ESCALATED"
    ]
    assert review(carol, escalated, "APPROVED").status_code == 201
    assert wait_for_state(escalated.pk, timeout=60).job_state == "COMPLETED"


def test_two_reviews_at_once_finish_the_task_once(tmp_path, transactional_db, use_transport, api, alice):  # type: ignore[no-untyped-def]
    import threading

    from django.db import connection

    from ants.messaging import InProcessTransport
    from tests.engine.harness import Harness

    harness = Harness(use_transport(InProcessTransport()), tmp_path).start()
    harness.add_ant("ant-a", tags=["a"])
    try:
        clients = [person(name)[1] for name in ("carol", "dave", "erin", "fay")]
        request = waiting(submit(api, alice, gate("gate-race")))
        barrier = threading.Barrier(len(clients))
        answers: list[int] = []

        def vote(client: APIClient) -> None:
            try:
                barrier.wait()
                answers.append(review(client, request, "APPROVED").status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=vote, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # one review decided it; the others found the task no longer waiting
        assert sorted(answers) == [201, 400, 400, 400], answers
        done = wait_for_state(request.pk, timeout=60)
        assert done.job_state == "COMPLETED"
        assert ApprovalReview.objects.filter(job_request=request).count() == 1
        deploy = TaskExecution.objects.get(job_execution__job_request=request, task_type="deploy")
        assert deploy.attempt == 1
    finally:
        harness.stop()
