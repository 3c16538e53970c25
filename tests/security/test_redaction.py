"""Secrets stay out of every output: multi-line values are masked line by line and whole, values
under 4 characters are refused as secrets (never half-masked), and error texts are redacted."""

import pytest

from ants.executors.base import Redactor, maskable_values
from ants.messaging import InProcessTransport
from jobs.models import TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import Harness, wait_for_state

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "q4mJ3fK2rY8ZxNvWbT1pLdE5sHc0uQaG6oRjKiMnYw==\n"
    "-----END PRIVATE KEY-----"
)
PEM_LINES = PEM.splitlines()[1:3]


def test_each_line_of_a_multiline_secret_is_masked_and_the_whole_value():
    redact = Redactor([PEM])
    for line in PEM.splitlines():
        assert redact(f"out: {line}") == "out: ****"
    assert redact(f"error: {PEM}!") == "error: ****!"


def test_values_under_four_characters_are_never_masked():
    assert maskable_values(["ab", "abc", " x ", "abcd"]) == ["abcd"]
    assert Redactor(["ab"])("about a cab") == "about a cab"  # not "****out", which reveals it
    assert Redactor(["ab", "abcd"])("abcd about") == "**** about"


def test_a_short_secret_config_or_param_is_refused(api):
    assert (
        upload(
            api, 'job_type: short\ntasks:\n- task_type: t\n  method: SHELL\n  script: ["true"]\n'
        ).status_code
        == 201
    )
    refused = api.post("/api/jobs/definitions/short/configs", {"name": "Pin", "value": "ab", "secret": True},
                       format="json")  # fmt: skip
    assert refused.status_code == 400 and "at least 4 characters" in str(refused.json())
    plain = api.post("/api/jobs/definitions/short/configs", {"name": "Pin", "value": "ab", "secret": False},
                     format="json")  # fmt: skip
    assert plain.status_code == 201
    submit = api.post(
        "/api/jobs/requests", {"job_type": "short", "params": {"DB_PASSWORD": "ab"}}, format="json"
    )
    assert submit.status_code == 400 and "params.DB_PASSWORD" in str(submit.json())
    assert "at least 4 characters" in str(submit.json())


LEAKY = """\
job_type: leaky
tasks:
- task_type: show
  method: SHELL
  script:
  - printf 'key:%s\\n' "$PEM_PRIVATE_KEY"
  on_completed: fork
- task_type: fork
  method: FORK_JOB
  fork_job_type: "{{.Target}}"
"""


@pytest.mark.django_db(transaction=True)
def test_secrets_stay_out_of_stdout_and_error_messages(api, alice, tmp_path):
    assert upload(api, LEAKY).status_code == 201
    harness = Harness(InProcessTransport(), tmp_path).start()
    harness.add_ant("ant-a")
    try:
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type="leaky",
                                 params={"PEM_PRIVATE_KEY": PEM, "Target": "DbPass-9f8e7d"},
                                 secret_params={"Target"})  # fmt: skip
        done = wait_for_state(request.pk)
    finally:
        harness.stop()
    assert done.job_state == "FAILED"
    assert "DbPass-9f8e7d" not in done.error_message and "****" in done.error_message, done.error_message
    tasks = {t.task_type: t for t in TaskExecution.objects.filter(job_execution__job_request=request)}
    assert "DbPass-9f8e7d" not in tasks["fork"].error_message and "****" in tasks["fork"].error_message

    answer = api.get(f"/api/jobs/requests/{request.pk}").json()
    text = str(answer)
    assert "DbPass-9f8e7d" not in text
    for line in PEM_LINES:
        assert line not in text
    show = next(t for t in answer["execution"]["tasks"] if t["task_type"] == "show")
    assert "key:****" in show["stdout"] and "****" in show["stdout"]
    assert tasks["show"].stdout and all(line not in str(tasks["show"].stdout) for line in PEM_LINES)
