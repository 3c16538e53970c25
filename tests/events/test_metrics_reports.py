"""`GET /api/metrics` parsed by prometheus_client's parser, its token, and the report numbers at
`/api/reports` and `/api/jobs/requests/stats`, after real runs on a queen and an ant."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state
from tests.events.conftest import eventually

pytestmark = pytest.mark.usefixtures("outbound_in_process")

DEFINITION = """\
job_type: measured
required_params: [Code]
tasks:
- task_type: first
  method: SHELL
  script: ["echo one"]
  on_completed: second
- task_type: second
  method: SHELL
  script: ["exit {{.Code}}"]
"""


def run_some(api, alice) -> None:  # type: ignore[no-untyped-def]
    assert upload(api, DEFINITION).status_code == 201
    for code in ("0", "0", "4"):
        request = request_submit(
            org_id=alice.org_id, user=alice.user, job_type="measured", params={"Code": code}
        )
        wait_for_state(request.pk)


def samples(text: str) -> dict[str, list]:  # type: ignore[type-arg]
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_need_the_token_and_parse(standalone, api, alice, anon_api, settings, client):  # type: ignore[no-untyped-def]
    settings.FORMICARY_METRICS_TOKEN = "scrape-me"
    run_some(api, alice)
    assert anon_api.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    resp = client.get("/api/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/plain")

    def observed() -> dict | None:  # type: ignore[type-arg]
        # the queen's outbound thread observes durations just after each commit
        found = samples(client.get("/api/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode())
        counts = [s for s in found["formicary_task_duration_seconds"] if s.name.endswith("_count")]
        return found if sum(s.value for s in counts if s.labels["method"] == "SHELL") >= 6 else None

    found = eventually(observed)
    by_state = {(s.labels["job_type"], s.labels["state"]): s.value for s in found["formicary_requests"]}
    assert by_state[("measured", "COMPLETED")] == 2 and by_state[("measured", "FAILED")] == 1
    assert found["formicary_queue_depth"][0].value == 0
    assert (
        "formicary_queue_oldest_pending_age_seconds" in found and "formicary_scheduler_lag_seconds" in found
    )
    ants = {s.labels["ant_id"]: s.value for s in found["formicary_ant_capacity"]}
    assert ants.get("ant-events") == 2
    assert {s.labels["ant_id"] for s in found["formicary_ant_load"]} >= {"ant-events"}
    tasks = {(s.labels["method"], s.labels["state"]): s.value for s in found["formicary_tasks"]}
    assert tasks[("SHELL", "COMPLETED")] == 5 and tasks[("SHELL", "FAILED")] == 1
    counts = [s for s in found["formicary_task_duration_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in counts if s.labels["method"] == "SHELL") >= 6  # observed as tasks ended
    assert "formicary_notification_failures" in found and "formicary_webhook_failures" in found
    # a staff user's API token works too (alice is staff in the fixture world)
    assert api.get("/api/metrics").status_code == 200


def test_reports_and_stats_carry_the_same_numbers(standalone, api, alice, client):  # type: ignore[no-untyped-def]
    run_some(api, alice)
    report = api.get("/api/reports?days=7")
    assert report.status_code == 200, report.content
    data = report.json()
    (measured,) = [t for t in data["job_types"] if t["job_type"] == "measured"]
    assert (measured["runs"], measured["succeeded"], measured["failed"]) == (3, 2, 1)
    assert measured["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert measured["p50_secs"] is not None and measured["p95_secs"] >= measured["p50_secs"]
    assert (
        len(data["runs_per_day"]) == 7 and sum(sum(d["counts"].values()) for d in data["runs_per_day"]) == 3
    )
    assert data["most_failing_tasks"] == [
        {"job_type": "measured", "task_type": "second", "failures": 1, "runs": 3}
    ]
    assert {t["task_type"] for t in data["slowest_tasks"]} == {"first", "second"}
    assert api.get("/api/reports?days=0").status_code == 400
    assert "whole number of days" in str(api.get("/api/reports?days=abc").json())
    stats = api.get("/api/jobs/requests/stats").json()
    row = next(r for r in stats if r["job_state"] == "COMPLETED" and r["job_type"] == "measured")
    assert row["counts"] == 2  # the existing field
    assert row["success_rate"] == measured["success_rate"] and row["p50_secs"] == measured["p50_secs"]
    client.force_login(alice.user)
    page = client.get("/reports")
    assert page.status_code == 200 and b'data-chart="runs-per-day"' in page.content
    assert client.get("/reports?days=-1").status_code == 400


def test_ends_written_by_the_queens_answers_reach_the_hooks_without_a_look_up(  # type: ignore[no-untyped-def]
    standalone, api, alice, client, settings, monkeypatch
):
    """The answers' ends carry what the hooks need (the durations' start, the definition): the
    hooks' thread reads nothing back for them, and still observes every duration."""
    from jobs.outbound import hooks

    looked_up: list[list[int]] = []  # the hooks' by-id entries: their ends are looked up
    monkeypatch.setattr(hooks, "tasks_ended", looked_up.append)
    monkeypatch.setattr(hooks, "jobs_ended", looked_up.append)
    settings.FORMICARY_METRICS_TOKEN = "scrape-me"

    def durations() -> float:  # the counters are the process's: other tests' tasks count too
        found = samples(client.get("/api/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode())
        counts = [s for s in found.get("formicary_task_duration_seconds", []) if s.name.endswith("_count")]
        return sum(s.value for s in counts if s.labels["method"] == "SHELL")

    before = durations()
    run_some(api, alice)  # 3 requests: 2 x 2 tasks completed, then 1 completed and 1 failed
    assert eventually(lambda: durations() >= before + 6 or None)
    assert looked_up == []
