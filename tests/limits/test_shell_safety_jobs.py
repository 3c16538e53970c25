"""Params reach the shell as data, never as commands (issue 14, finding 7), end to end."""

import time

from jobs.domain.logs import task_log_text
from jobs.models import TaskExecution
from tests.conftest import upload
from tests.engine.harness import wait_for_state

SAFE = """\
job_type: shell-safe
required_params: [Branch]
tasks:
- task_type: echo
  method: SHELL
  script:
    - echo "env:$Branch"
    - echo quoted:{{.Branch | shellquote}}
    - echo "dashed:$git_branch"
"""


def _log(request_id: int, wanted: str) -> str:
    task = TaskExecution.objects.get(job_execution__job_request_id=request_id)
    deadline = time.monotonic() + 10
    text = task_log_text(task.pk)
    while wanted not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = task_log_text(task.pk)
    return text


def test_params_are_exported_and_shellquote_keeps_them_one_word(standalone, api, tmp_path):  # type: ignore[no-untyped-def]
    resp = upload(api, SAFE)
    assert resp.status_code == 201, resp.content
    assert resp.json()["warnings"] == []
    pwned = tmp_path / "pwned"
    branch = f"main; touch {pwned}; $(touch {pwned}) `touch {pwned}` '"
    params = {"Branch": branch, "git-branch": "feature/x"}
    resp = api.post("/api/jobs/requests", {"job_type": "shell-safe", "params": params}, format="json")
    assert resp.status_code == 201, resp.content
    done = wait_for_state(resp.json()["id"])
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    text = _log(done.pk, "dashed:feature")
    assert f"env:{branch}" in text
    assert f"quoted:{branch}" in text
    assert "dashed:feature/x" in text  # a param name that is no env name is made one
    assert not pwned.exists()


def test_upload_warns_of_a_param_pasted_bare(api):  # type: ignore[no-untyped-def]
    text = SAFE.replace("job_type: shell-safe", "job_type: shell-unsafe").replace(
        '    - echo "env:$Branch"', "    - echo {{.Branch}}"
    )
    resp = upload(api, text)
    assert resp.status_code == 201, resp.content
    assert resp.json()["warnings"] == [
        "task 'echo': line 7: param 'Branch' is pasted into the script unquoted; "
        'use "$Branch" (the environment) or {{.Branch | shellquote}}'
    ]
    again = upload(api, text)  # the same text: 200, the same warnings
    assert again.status_code == 200 and again.json()["warnings"] == resp.json()["warnings"]
