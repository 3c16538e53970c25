"""The reference's definition language end to end, through the REST API with a real queen and
ants: task variables as template values and their precedence, the `::add-job-context` /
`::add-task-context` markers, cost_factor, artifact_key_prefix, retry_backoff_policy, and the
upload's warnings and dynamic_template_tasks rule."""

from datetime import timedelta

from django.utils import timezone

from artifacts.models import Artifact
from jobs.models import JobRequest, TaskExecution
from orgs.models import OrgConfig
from tests.conftest import upload
from tests.engine.harness import wait_for_state


def run(api, definition: str, params: dict | None = None, state: str = "COMPLETED") -> dict:  # type: ignore[no-untyped-def]
    """Upload, submit and wait through the API; the request as GET /api/jobs/requests/{id} shows it."""
    resp = upload(api, definition)
    assert resp.status_code in (200, 201), resp.content
    submitted = api.post(
        "/api/jobs/requests", {"job_type": resp.json()["job_type"], "params": params or {}}, format="json"
    )
    assert submitted.status_code == 201, submitted.content
    done = wait_for_state(submitted.json()["id"])
    assert done.job_state == state, (done.error_code, done.error_message)
    return api.get(f"/api/jobs/requests/{done.pk}").json()  # type: ignore[no-any-return]


def tasks(request: dict) -> dict[str, dict]:
    return {t["task_type"]: t for t in request["execution"]["tasks"]}


TASK_VARIABLES = """\
job_type: task-variables
tasks:
- task_type: deploy
  method: SHELL
  variables:
    Service: svc
  script:
    - echo "::add-task-context Seen::{{.Service}} $Service"
"""


def test_task_variables_are_template_values_and_reach_the_executor(cluster, api):
    request = run(api, TASK_VARIABLES)
    # rendered by the queen ({{.Service}}) and in the task's environment ($Service) as before
    assert tasks(request)["deploy"]["contexts"]["Seen"] == "svc svc"


PRECEDENCE = """\
job_type: precedence
job_variables:
  A: job-variable
  B: job-variable
  C: job-variable
tasks:
- task_type: show
  method: SHELL
  variables:
    D: task-variable
  script:
    - echo "::add-task-context Seen::{{.A}} {{.B}} {{.C}} {{.D}} {{.E}}"
"""


def test_configs_job_variables_params_and_task_variables_keep_the_reference_order(cluster, api, alice):
    for name in ("A", "E"):
        config = OrgConfig(organization_id=alice.org_id, name=name, secret=False)
        config.set_value("org-config")
        config.save()
    definition = upload(api, PRECEDENCE).json()
    made = api.post(f"/api/jobs/definitions/{definition['id']}/configs", {"name": "B", "value": "job-config"},
                    format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    request = run(api, PRECEDENCE, {"C": "param", "D": "param"})
    # A: the job variable wins over an organization config; B: a job config over the job
    # variable; C: the param over both; D: the task variable over the param; E: org config only
    assert (
        tasks(request)["show"]["contexts"]["Seen"] == "job-variable job-config param task-variable org-config"
    )


CONTEXT = """\
job_type: context-markers
tasks:
- task_type: produce
  method: SHELL
  script:
    - echo "::add-job-context Version::1.2.3"
    - echo "::add-task-context Own::mine"
    - echo "##formicary:context Legacy=still-works"
  on_completed: consume
- task_type: consume
  method: SHELL
  script:
    - echo "::add-task-context Got::{{.Version}} {{.Legacy}}"
"""


def test_add_job_context_and_add_task_context(cluster, api):
    request = run(api, CONTEXT, {"Version": "from-a-param"})  # the job context wins over params
    produce, consume = tasks(request)["produce"], tasks(request)["consume"]
    assert request["execution"]["contexts"]["Version"] == "1.2.3"  # the job's context
    assert "Version" not in produce["contexts"]
    assert produce["contexts"]["Own"] == "mine"  # the task's own
    assert produce["contexts"]["Legacy"] == "still-works"  # the project's marker as before
    assert consume["contexts"]["Got"] == "1.2.3 still-works"  # later tasks read both


COST_AND_PREFIX = """\
job_type: cost-and-prefix
tasks:
- task_type: build
  method: SHELL
  cost_factor: 2.5
  artifact_key_prefix: builds/nightly
  script:
    - echo built > out.txt
  artifacts:
    paths: [out.txt]
"""


def test_cost_factor_and_artifact_key_prefix_act(cluster, api, alice):
    request = run(api, COST_AND_PREFIX)
    assert tasks(request)["build"]["cost_factor"] == 2.5
    artifact = Artifact.objects.get(job_request_id=request["id"], name="out.txt")
    assert artifact.storage_key.startswith(f"org-{alice.org_id}/builds/nightly/"), artifact.storage_key


TASK_BACKOFF = """\
job_type: task-backoff
tasks:
- task_type: flaky
  method: SHELL
  retry: 3
  delay_between_retries: 0s
  retry_backoff_policy:
    min: 1h
    max: 2h
  script: ["exit 1"]
"""


def test_task_retry_waits_as_the_backoff_policy_says(cluster, api):
    resp = upload(api, TASK_BACKOFF)
    submitted = api.post("/api/jobs/requests", {"job_type": "task-backoff"}, format="json").json()
    task = _wait_for(lambda: TaskExecution.objects.filter(job_execution__job_request_id=submitted["id"],
                                                          retried=1, task_state="READY").first())  # fmt: skip
    # without the policy the fixed 0s delay would have run (and failed) it again at once
    assert task.not_before - timezone.now() > timedelta(minutes=50), resp.json()
    assert api.post(f"/api/jobs/requests/{submitted['id']}/cancel").status_code == 200


JOB_BACKOFF = """\
job_type: job-backoff
retry: 2
retry_backoff_policy:
  min: 1h
tasks:
- task_type: fails
  method: SHELL
  script: ["exit 1"]
"""


def test_job_retry_waits_as_the_backoff_policy_says(cluster, api):
    assert upload(api, JOB_BACKOFF).status_code == 201
    submitted = api.post("/api/jobs/requests", {"job_type": "job-backoff"}, format="json").json()
    request = _wait_for(
        lambda: JobRequest.objects.filter(pk=submitted["id"], retried=1, job_state="PENDING").first()
    )
    assert request.not_before - timezone.now() > timedelta(minutes=50)
    assert api.post(f"/api/jobs/requests/{submitted['id']}/cancel").status_code == 200


def _wait_for(find, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)
    return found


# -- uploads (no cluster needed) --------------------------------------------------------------

IGNORED = """\
job_type: ignored-fields
methods: SHELL
tasks:
- task_type: t
  method: SHELL
  helper_environment: {A: b}
  report_stdout: true
  notify: {email: {recipients: [a@example.com]}}
  webhook: {url: https://example.com/hook}
  script: [echo hi]
"""


def test_upload_answers_with_a_warning_for_each_field_not_acted_on(api):
    resp = upload(api, IGNORED)
    assert resp.status_code == 201, resp.content
    warnings = resp.json()["warnings"]
    for field in ("methods",):
        assert any(w.startswith(f"field '{field}': accepted but not acted on yet") for w in warnings), (
            warnings
        )
    for field in ("helper_environment", "report_stdout"):
        assert any(
            w.startswith(f"task 't': field '{field}': accepted but not acted on yet") for w in warnings
        ), warnings
    assert len(warnings) == 3, warnings  # the task webhook and the task notify act
    assert api.get(f"/api/jobs/definitions/{resp.json()['id']}").json()["warnings"] == warnings


def test_upload_without_ignored_fields_has_no_warnings(api):
    resp = upload(api, TASK_VARIABLES)
    assert resp.status_code == 201, resp.content
    # the shell lint (jobs/definition/lint.py) may still warn about {{.Service}} in the script
    assert not [w for w in resp.json()["warnings"] if "not acted on" in w], resp.json()["warnings"]


GENERATED = """\
job_type: generated
tasks:
{{- range $i := Iterate 2 }}
- task_type: step-{{$i}}
  method: SHELL
  script: [echo {{$i}}]
  {{- if lt $i 1 }}
  on_completed: step-{{Add $i 1}}
  {{- end }}
{{- end }}
"""


def test_range_generating_tasks_needs_dynamic_template_tasks(api):
    refused = upload(api, GENERATED)
    assert refused.status_code == 400
    assert "dynamic_template_tasks" in refused.content.decode()
    assert "generates tasks with range" in refused.content.decode()
    accepted = upload(api, GENERATED.replace("tasks:\n", "dynamic_template_tasks: true\ntasks:\n", 1))
    assert accepted.status_code == 201, accepted.content
    assert [t["task_type"] for t in accepted.json()["tasks"]] == ["step-0", "step-1"]
