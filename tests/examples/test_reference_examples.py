"""The reference system's own definitions as a compatibility check, from the folder named by
FORMICARY_REFERENCE_EXAMPLES (.ci/run sets it; without it these tests skip, saying why).

Every file is loaded: parsed and validated by the core, drawn as DOT, uploaded through the API
and served back unchanged. Those that can run here are run end to end through the API, the way
the standalone deployment runs them (a task that names no method runs on a SHELL ant). The rest
are skipped with the reason: a Kubernetes cluster, a registry image, a websocket client or the
internet, none of which a test may count on. The end of the run prints the counts."""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobs.definition import JobSpec, load_definition, to_dot
from tests.conftest import REFERENCE_REPORT, reference_param, reference_params, upload
from tests.examples.test_examples_run import finished, submit, tasks_of

pytestmark = pytest.mark.timeout(180)

# Params a runnable reference definition needs (its template names them, its docs give them).
PARAMS = {"taco-job": {"ExitCode": "3"}}
RUNNABLE_METHODS = {"SHELL", "FORK_JOB", "AWAIT_FORKED_JOB", "HTTP_GET", "HTTP_POST_FORM", "HTTP_POST_JSON",
                    "HTTP_PUT_FORM", "HTTP_PUT_JSON", "HTTP_DELETE"}  # fmt: skip
NEEDS_NETWORK = re.compile(r"\b(curl|wget|git clone|pip install|apk (?:add|--update)|apt-get)\b|https?://\S+")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def why_not_run(spec: JobSpec) -> str | None:
    """Why this definition cannot run in a test here, or None when it can."""
    for task in spec.tasks:
        name = f"task {task.task_type}"
        method = task.method if task.method_given else "SHELL"  # standalone: no method runs as SHELL
        if method == "KUBERNETES":
            return f"{name}: method KUBERNETES needs a Kubernetes cluster (none here)"
        if method == "DOCKER":
            image = task.container.get("image", "?")
            return f"{name}: DOCKER image {image} comes from a registry (none is reachable here)"
        if method == "WEBSOCKET":
            return f"{name}: WEBSOCKET needs a websocket client ant (tests/websocket_ants runs web-job)"
        if method not in RUNNABLE_METHODS:
            return f"{name}: no ant offers method {method} here"
        if method.startswith("HTTP_"):
            url = task.url or (task.script[0] if task.script else "")
            if urlparse(url.strip()).hostname not in LOCAL_HOSTS:
                return f"{name}: calls {url.strip()} (tests have no internet)"
        if task.services or task.privileged:
            return (
                f"{name}: needs service containers or privileges (KUBERNETES, the reference's default method)"
            )
        found = NEEDS_NETWORK.search("\n".join(task.before_script + task.script + task.after_script))
        if found:
            return f"{name}: needs the internet ({found.group(0)})"
    return None


@pytest.mark.parametrize("path", reference_params())
def test_reference_example_loads_and_uploads(api, path: Path | None):
    path = reference_param(path)
    text = path.read_text()
    spec = load_definition(text)
    assert spec.tasks and not spec.warnings
    dot = to_dot(spec)
    assert all(f'"{t.task_type}"' in dot for t in spec.tasks)
    resp = upload(api, text)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert [t["task_type"] for t in body["tasks"]] == [t.task_type for t in spec.tasks]
    back = api.get(f"/api/jobs/definitions/{body['job_type']}/yaml")
    assert back.status_code == 200 and back.content.decode() == text
    REFERENCE_REPORT.loaded.add(path.stem)
    print(f"reference example {path.name}: loaded ({len(spec.tasks)} tasks)")


@pytest.mark.parametrize("path", reference_params())
def test_reference_example_runs_where_it_can(transactional_db, request, api, settings, path: Path | None):
    path = reference_param(path)
    spec = load_definition(path.read_text())
    reason = why_not_run(spec)
    if reason:
        REFERENCE_REPORT.not_run[path.stem] = reason
        pytest.skip(f"{path.name}: {reason}")
    request.getfixturevalue("harness")  # a queen and ants only for what runs
    settings.FORMICARY_DEFAULT_METHOD = "SHELL"  # as `manage.py standalone` runs tasks naming no method
    for other in path.parent.glob("*.yaml"):  # a FORK_JOB finds the job types it forks
        assert upload(api, other.read_text()).status_code in (200, 201), other.name
    done = finished(api, submit(api, spec.job_type, **PARAMS.get(path.stem, {})))
    assert done["job_state"] == "COMPLETED", (done["error_code"], done["error_message"], tasks_of(done))
    REFERENCE_REPORT.ran.add(path.stem)
    print(f"reference example {path.name}: ran, tasks {sorted(tasks_of(done))}")
