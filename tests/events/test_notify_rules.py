"""The `notify` rules of the pure core: `when`, the first success after a failure, `except`."""

import pytest

from jobs.definition.notify_rules import Notice, notices, problems, should_notify


@pytest.mark.parametrize(
    ("when", "succeeded", "previous", "expected"),
    [
        ("always", True, None, True),
        ("always", False, True, True),
        ("never", False, False, False),
        ("onSuccess", True, False, True),
        ("onSuccess", False, True, False),
        ("onFailure", False, True, True),
        ("onFailure", True, False, True),  # the first success after a failure
        ("onFailure", True, True, False),
        ("onFailure", True, None, False),
    ],
)
def test_when(when: str, succeeded: bool, previous: bool | None, expected: bool) -> None:
    assert should_notify(when, succeeded, previous) is expected


def test_channels_recipients_and_except() -> None:
    notify = {
        "email": {"recipients": ["a@x.io", " "], "when": "onFailure"},
        "slack": {"recipients": "#a, #b"},
    }
    assert notices(notify, False, None) == [Notice("email", ("a@x.io",)), Notice("slack", ("#a", "#b"))]
    assert notices(notify, True, True) == [Notice("slack", ("#a", "#b"))]
    assert notices({"slack": {"recipients": ["#a"], "except": "true"}}, True, None) == []
    assert notices({"except": " true ", "email": {"recipients": ["a@x.io"]}}, False, None) == []


def test_problems_name_the_field() -> None:
    assert problems({"email": {"when": "sometimes"}, "sms": {}}) == [
        "notify.email.when: 'sometimes' is not one of always, onSuccess, onFailure, never",
        "notify.sms: unknown channel (email or slack)",
    ]


def test_upload_refuses_a_bad_when_and_a_webhook_without_url() -> None:
    from jobs.definition.parser import load_upload

    text = (
        "job_type: j\nnotify:\n  email: {recipients: [a@b.c], when: sometimes}\nwebhook: {headers: {A: b}}\n"
    )
    text += "tasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n"
    with pytest.raises(Exception) as err:
        load_upload(text)
    assert "'sometimes' is not one of" in str(err.value) and "a webhook needs a url" in str(err.value)


def test_a_task_notify_is_checked_at_upload_and_acted_on_without_a_warning() -> None:
    from jobs.definition.errors import DefinitionError
    from jobs.definition.parser import load_upload

    task = "job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n  notify:\n"
    with pytest.raises(DefinitionError, match="notify.email.when: 'sometimes' is not one of"):
        load_upload(task + "    email: {recipients: [a@b.c], when: sometimes}\n")
    spec = load_upload(task + "    slack: {recipients: ['#x'], when: onFailure}\n")
    assert spec.tasks[0].notify == {"slack": {"recipients": ["#x"], "when": "onFailure"}}
    assert [w.field for w in spec.warnings] == []
