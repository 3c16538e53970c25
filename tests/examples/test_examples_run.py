"""Every definition in examples/ uploaded and run end to end through the REST API, on a queen and
ants (standalone shape: threads, in-process messaging). Each example has a test here; the guard
below fails when an example is added without one."""

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobs.definition.cron import next_fire, previous_fire
from jobs.queen.cron import CronScheduler
from tests.conftest import example_paths, example_text, upload
from tests.engine.harness import wait_for_state

pytestmark = pytest.mark.timeout(180)

# example -> the test that runs it (web-job needs a websocket client: tests/websocket_ants runs it)
RUN_BY = {
    "approval-gate": "test_approval_gate_waits_for_two_reviewers",
    "ci-pipeline": "test_ci_pipeline_builds_tests_and_publishes_main",
    "docker-job": "test_docker_job_runs_in_containers",
    "etl-job": "test_etl_job_hands_files_on_as_artifacts",
    "exit-code-routing": "test_exit_code_routing_picks_the_path",
    "fan-out-deploy": "test_fan_out_deploy_runs_each_region_and_reports",
    "file-sensor": "test_file_sensor_polls_until_the_file_is_there",
    "fork-await": "test_fork_await_runs_both_children",
    "fork-worker": "test_fork_await_runs_both_children",
    "http-api-job": "test_http_api_job_calls_the_service",
    "nightly-cron": "test_nightly_cron_tick_runs_the_job",
    "sub-workflow": "test_sub_workflow_waits_for_its_child_and_takes_back_its_output",
    "web-job": "tests/websocket_ants/test_websocket_ants.py::test_websocket_ant_runs_the_web_job",
}


def test_every_example_is_run_by_a_test() -> None:
    assert sorted(RUN_BY) == [p.stem for p in example_paths()]
    for name, test in RUN_BY.items():
        if "::" in test:
            path, func = test.split("::")
            assert f"def {func}(" in (Path(__file__).parents[2] / path).read_text(), name
        else:
            assert callable(globals().get(test)), f"{name}: no {test} here"


def define(api, name: str) -> None:  # type: ignore[no-untyped-def]
    resp = upload(api, example_text(name))
    assert resp.status_code in (200, 201), resp.content


def submit(api, job_type: str, **params: Any) -> int:  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/requests", {"job_type": job_type, "params": params}, format="json")
    assert resp.status_code == 201, resp.content
    return int(resp.json()["id"])


def finished(api, request_id: int, timeout: float = 60.0) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    wait_for_state(request_id, timeout=timeout)
    return api.get(f"/api/jobs/requests/{request_id}").json()


def tasks_of(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task_type"]: t for t in (detail["execution"] or {}).get("tasks", [])}


def states(detail: dict[str, Any]) -> dict[str, str]:
    return {name: t["task_state"] for name, t in tasks_of(detail).items()}


def log_of(api, request_id: int, task_type: str, wanted: str, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    """A task's log once it holds ``wanted`` (the log writer stores lines a moment after the task ends;
    ``wanted`` is the output awaited, not a part of it, which the ``$ command`` line may hold too)."""
    deadline = time.monotonic() + timeout
    while True:
        text = api.get(f"/api/jobs/requests/{request_id}/logs?task_type={task_type}").content.decode()
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def artifacts(api, request_id: int) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    records = api.get(f"/api/artifacts?job_request_id={request_id}&pageSize=100").json()["Records"]
    return {a["name"]: a for a in records}


def download(api, artifact: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    resp = api.get(f"/api/artifacts/{artifact['id']}/download")
    assert resp.status_code == 200
    return b"".join(resp.streaming_content).decode() if resp.streaming else resp.content.decode()


def test_ci_pipeline_builds_tests_and_publishes_main(harness, api):
    define(api, "ci-pipeline")
    main = finished(api, submit(api, "ci-pipeline", GitBranch="main", GitCommitID="abc123"))
    assert main["job_state"] == "COMPLETED", main["error_message"]
    assert states(main) == dict.fromkeys(["checkout", "lint", "build", "test", "publish"], "COMPLETED")
    assert "checked out main at abc123" in log_of(api, main["id"], "checkout", "checked out main at abc123")
    assert "tests passed" in log_of(api, main["id"], "test", "tests passed")
    assert "published greeter from main" in log_of(api, main["id"], "publish", "published greeter from main")
    assert {"src/greeter.sh", "dist/greeter"} <= set(artifacts(api, main["id"]))

    branch = finished(api, submit(api, "ci-pipeline", GitBranch="feature-x"))
    assert branch["job_state"] == "COMPLETED", branch["error_message"]
    assert tasks_of(branch)["publish"]["exit_code"] == "SKIPPED"  # `except`: only main publishes

    wip = finished(api, submit(api, "ci-pipeline", GitBranch="wip/try"))
    assert wip["job_state"] == "FILTERED" and not tasks_of(wip)  # skip_if: not run at all


def test_etl_job_hands_files_on_as_artifacts(harness, api):
    define(api, "etl-job")
    done = finished(api, submit(api, "etl-job", Symbol="ANTS"))
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert states(done) == dict.fromkeys(["extract", "transform", "load"], "COMPLETED")
    stored = artifacts(api, done["id"])
    assert {"prices.csv", "average.txt", "report.txt"} <= set(stored)
    assert download(api, stored["average.txt"]).strip() == "21.00"
    assert download(api, stored["report.txt"]).strip() == "ANTS averaged 21.00 over 3 days"


def test_file_sensor_polls_until_the_file_is_there(harness, api, tmp_path):
    define(api, "file-sensor")
    ready = tmp_path / "ready"
    request_id = submit(api, "file-sensor", ReadyFile=str(ready))

    def polls() -> int:
        return int(tasks_of(api.get(f"/api/jobs/requests/{request_id}").json()).get("wait-for-file", {})
                   .get("attempt") or 0)  # fmt: skip

    deadline = time.monotonic() + 20
    while polls() < 2:  # it has polled and found nothing at least once
        assert time.monotonic() < deadline, json.dumps(api.get(f"/api/jobs/requests/{request_id}").json())
        time.sleep(0.1)
    ready.write_text("batch-42")
    done = finished(api, request_id)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert tasks_of(done)["wait-for-file"]["attempt"] >= 2
    assert "processing batch-42" in log_of(api, request_id, "process", "processing batch-42")


def test_file_sensor_gives_up_after_max_wait(harness, api, tmp_path):
    define(api, "file-sensor")
    request_id = submit(api, "file-sensor", ReadyFile=str(tmp_path / "never"), MaxWaitSecs=0)
    done = finished(api, request_id, timeout=20)
    assert done["job_state"] == "FAILED"
    assert "process" not in tasks_of(done)
    assert "gave up waiting" in log_of(api, done["id"], "wait-for-file", "gave up waiting")


@pytest.mark.parametrize(
    ("outcome", "path", "job_state"),
    [
        ("pass", ["prepare", "triage", "report", "cleanup"], "COMPLETED"),
        ("flaky", ["prepare", "triage", "rerun-flaky", "report", "cleanup"], "COMPLETED"),
        ("broken", ["prepare", "triage", "open-ticket", "report", "cleanup"], "COMPLETED"),
        ("unknown", ["prepare", "triage", "cleanup"], "FAILED"),  # cleanup is always_run
    ],
)
def test_exit_code_routing_picks_the_path(harness, api, outcome, path, job_state):
    define(api, "exit-code-routing")
    done = finished(api, submit(api, "exit-code-routing", Outcome=outcome))
    assert done["job_state"] == job_state, done["error_message"]
    ran = sorted(tasks_of(done).values(), key=lambda t: t["task_order"])
    assert [t["task_type"] for t in ran] == path
    assert states(done)["cleanup"] == "COMPLETED"


def test_approval_gate_waits_for_two_reviewers(harness, api, alice):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    from orgs import services as org_services

    define(api, "approval-gate")
    request_id = submit(api, "approval-gate")
    wait_for_state(request_id, ["MANUAL_APPROVAL_REQUIRED"])
    execution_id = api.get(f"/api/jobs/requests/{request_id}").json()["execution"]["id"]
    body = {"execution_id": execution_id, "task_type": "production-approval", "status": "APPROVED"}
    own = api.post(f"/api/jobs/requests/{request_id}/review", body, format="json")
    assert own.status_code == 400, own.content  # the policy bars the requester
    for name in ("rita", "sam"):
        user = org_services.user_ensure(username=name, org_name="acme", create=True)
        user.role = "admin"
        user.save()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {org_services.token_issue(user=user).plain}")
        assert client.post(f"/api/jobs/requests/{request_id}/review", body, format="json").status_code == 201
    done = finished(api, request_id)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert [t["task_type"] for t in sorted(tasks_of(done).values(), key=lambda t: t["task_order"])] == [
        "build", "test", "production-approval", "deploy-production",
    ]  # fmt: skip
    assert tasks_of(done)["production-approval"]["exit_code"] == "APPROVED"


def test_fork_await_runs_both_children(harness, api):
    define(api, "fork-worker")
    define(api, "fork-await")
    done = finished(api, submit(api, "fork-await", ItemsPerShard=2), timeout=90)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert states(done) == dict.fromkeys(
        ["split", "fork-shard-1", "fork-shard-2", "await-shards", "combine"], "COMPLETED"
    )
    children = api.get("/api/jobs/requests?job_type=fork-worker").json()["Records"]
    assert len(children) == 2 and {c["parent_id"] for c in children} == {done["id"]}
    for child in children:
        shard = child["params"]["Shard"]
        assert child["job_state"] == "COMPLETED"
        assert f"shard {shard} item 2" in log_of(api, child["id"], "work", f"shard {shard} item 2")


def test_sub_workflow_waits_for_its_child_and_takes_back_its_output(harness, api):
    define(api, "fork-worker")
    define(api, "sub-workflow")
    done = finished(api, submit(api, "sub-workflow", Items=4, Other="not forwarded"), timeout=90)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert states(done) == {"process-shard": "COMPLETED", "report": "COMPLETED"}
    (child,) = api.get("/api/jobs/requests?job_type=fork-worker").json()["Records"]
    assert child["params"] == {"Shard": "1", "Items": "4"} and child["job_state"] == "COMPLETED"
    assert "the shard processed 4 items" in log_of(api, done["id"], "report", "the shard processed 4 items")


def test_fan_out_deploy_runs_each_region_and_reports(harness, api):
    define(api, "fan-out-deploy")
    done = finished(api, submit(api, "fan-out-deploy"), timeout=90)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    ran = states(done)
    assert [ran[f"deploy-fo-{i}"] for i in range(3)] == ["COMPLETED"] * 3 and ran["report"] == "COMPLETED"
    assert "deploying to us-east (environment us-east)" in log_of(
        api, done["id"], "deploy-fo-1", "deploying to us-east (environment us-east)"
    )
    assert "3 regions, first COMPLETED with v1-eu-west" in log_of(
        api, done["id"], "report", "3 regions, first COMPLETED with v1-eu-west"
    )


def test_nightly_cron_tick_runs_the_job(harness, api):
    define(api, "nightly-cron")
    expr = "0 30 2 * * * *"
    assert f'cron_trigger: "{expr}"' in example_text("nightly-cron")
    tick = previous_fire(expr, harness_now())
    assert (tick.hour, tick.minute, tick.second) == (2, 30, 0)
    assert next_fire(expr, tick) - tick == timedelta(days=1)
    # the queen's cron step, one second after the last tick: one request, run at once
    assert CronScheduler().run_once(tick + timedelta(seconds=1)) == 1
    records = api.get("/api/jobs/requests?job_type=nightly-cron").json()["Records"]
    assert len(records) == 1 and records[0]["cron_triggered"] is True
    done = finished(api, records[0]["id"])
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert "nightly housekeeping for" in log_of(api, done["id"], "housekeeping", "nightly housekeeping for")


def harness_now():  # type: ignore[no-untyped-def]
    from django.utils import timezone

    return timezone.now()


def test_docker_job_runs_in_containers(harness, docker_ant, docker_image, api):
    define(api, "docker-job")
    done = finished(api, submit(api, "docker-job", Image=docker_image), timeout=120)
    assert done["job_state"] == "COMPLETED", done["error_message"]
    assert {t["ant_id"] for t in tasks_of(done).values()} == {"ant-docker"}
    assert "greeting checked" in log_of(api, done["id"], "check", "greeting checked")
    assert download(api, artifacts(api, done["id"])["out/greeting.txt"]).strip() == "hello from a container"


@pytest.fixture
def todo_service() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    """A local REST service answering like the public test API the example defaults to."""
    seen: list[tuple[str, str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, json.loads(raw) if raw else None))
            status = 201 if self.command == "POST" else 200
            payload = json.dumps({"id": 1, "path": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_http_api_job_calls_the_service(harness, api, todo_service):
    base, seen = todo_service
    define(api, "http-api-job")
    done = finished(api, submit(api, "http-api-job", ApiBase=base))
    assert done["job_state"] == "COMPLETED", done["error_message"]
    codes = {name: t["exit_code"] for name, t in tasks_of(done).items()}
    assert codes == {"read": "200", "create": "201", "update": "200", "delete": "200"}
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", "/todos/1"), ("POST", "/todos"), ("PUT", "/todos/1"), ("DELETE", "/todos/1"),
    ]  # fmt: skip
    assert seen[1][2] == {"title": "water the ants", "completed": "false"}
    assert seen[2][2] == {"title": "water the ants", "completed": "true"}
