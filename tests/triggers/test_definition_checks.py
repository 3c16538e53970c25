"""Triggers are checked at upload: each problem names the trigger and its field."""

import pytest

from jobs.definition.errors import DefinitionError
from jobs.definition.parser import load_upload
from jobs.definition.triggers import TriggerSpec, authorized, evaluate, github_push_params, hmac_sha256_hex

TASKS = "tasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n"


def problems(triggers: str) -> str:
    with pytest.raises(DefinitionError) as info:
        load_upload(f"job_type: j\ntriggers:\n{triggers}{TASKS}")
    return "\n".join(str(p) for p in info.value.problems)


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        ("- {name: a, type: email}\n", "field 'triggers[a].type': must be one of webhook, s3, queue"),
        ("- {name: a, type: webhook}\n", "field 'triggers[a].auth': required for a webhook trigger"),
        (
            "- {name: a, type: webhook, auth: {method: md5, secret_config: S}}\n",
            "field 'triggers[a].auth.method'",
        ),
        (
            "- {name: a, type: webhook, auth: {method: hmac_sha256}}\n",
            "field 'triggers[a].auth.secret_config'",
        ),
        ("- {name: a, type: s3}\n", "field 'triggers[a].bucket': required for a s3 trigger"),
        ("- {name: a, type: queue, topic: t}\n", "field 'triggers[a].group': required for a queue trigger"),
        (
            "- {name: a, type: s3, bucket: b}\n- {name: a, type: s3, bucket: c}\n",
            "two triggers are named 'a'",
        ),
        ("- {type: s3, bucket: b}\n", "field 'triggers[0].name': a trigger needs a name"),
        ("- {name: a, type: s3, bucket: b, poll_interval: soon}\n", "field 'triggers[a].poll_interval'"),
        (
            "- {name: a, type: s3, bucket: b, rate_limit: {max: 0, window: 1m}}\n",
            "triggers[a].rate_limit.max",
        ),
        (
            "- {name: a, type: s3, bucket: b, topic: x}\n",
            "field 'triggers[a].topic': unknown key for a s3 trigger",
        ),
        ("- {name: a, type: s3, bucket: b, filter: '{{ .Object.Key }}'}\n", "rendered away at upload"),
        ("- {name: a, type: s3, bucket: b, params: {K: '{{`{{ .Object.Key `}}'}}\n", "triggers[a].params.K"),
    ],
)
def test_bad_trigger_is_refused_naming_trigger_and_field(triggers: str, expected: str) -> None:
    assert expected in problems(triggers)


def test_at_most_five_triggers() -> None:
    six = "".join(f"- {{name: t{i}, type: s3, bucket: b}}\n" for i in range(6))
    assert "at most 5 triggers" in problems(six)


def test_escaped_templates_reach_the_trigger_unrendered() -> None:
    text = (
        "job_type: j\ntriggers:\n- name: push\n  type: webhook\n"
        "  auth: {method: hmac_sha256, secret_config: Secret}\n"
        "  params: {Ref: '{{`{{ .Body.ref }}`}}'}\n" + TASKS
    )
    spec = load_upload(text)
    assert spec.triggers[0]["params"] == {"Ref": "{{ .Body.ref }}"}
    assert not spec.warnings  # triggers act: no "not acted on" warning


def test_evaluate_filter_params_and_dedup() -> None:
    trigger = TriggerSpec(
        name="a", type="webhook", filter='{{ eq .Body.action "opened" }}', params={"N": "{{ .Body.n }}"},
        dedup_key="pr-{{ .Body.n }}",
    )  # fmt: skip
    fired = evaluate(trigger, {"Body": {"action": "opened", "n": 7}})
    assert (fired.fire, fired.params, fired.user_key) == (True, {"N": "7"}, "pr-7")
    filtered = evaluate(trigger, {"Body": {"action": "closed", "n": 7}})
    assert not filtered.fire and "filter rendered 'false'" in filtered.reason


def test_auth_methods() -> None:
    body = b'{"a": 1}'
    hmac_trigger = TriggerSpec(name="a", type="webhook", auth_method="hmac_sha256")
    assert authorized(hmac_trigger, "sha256=" + hmac_sha256_hex("k", body), "k", body)
    assert authorized(hmac_trigger, hmac_sha256_hex("k", body), "k", body)
    assert not authorized(hmac_trigger, hmac_sha256_hex("other", body), "k", body)
    assert not authorized(hmac_trigger, "", "k", body)
    assert not authorized(hmac_trigger, hmac_sha256_hex("", body), "", body)  # no secret never matches
    bearer = TriggerSpec(name="a", type="webhook", auth_method="bearer_token")
    assert authorized(bearer, "Bearer k", "k", body) and not authorized(bearer, "Bearer x", "k", body)
    key = TriggerSpec(name="a", type="webhook", auth_method="api_key_header")
    assert authorized(key, "k", "k", body) and not authorized(key, "kk", "k", body)


def test_github_push_params() -> None:
    params, _ = github_push_params(
        {
            "ref": "refs/heads/main",
            "after": "abc",
            "head_commit": {"message": "fix"},
            "repository": {"full_name": "o/r"},
        }  # fmt: skip
    )
    assert params == {
        "GitBranch": "main",
        "GitCommitID": "abc",
        "GitCommitMessage": "fix",
        "GitRepository": "o/r",
    }
    assert github_push_params({"ref": "refs/heads/x", "deleted": True, "after": "0" * 40})[0] is None
