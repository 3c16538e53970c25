"""Error-code rules matched without a database: scopes, regex over message and output, exit code,
order (own before global), and the retry limits an action grants."""

import pytest

from jobs.definition.error_rules import (
    HARD_FAILURE,
    RETRY_JOB,
    RETRY_TASK,
    ErrorRule,
    FailedTask,
    job_retry_limit,
    match_rule,
    regex_problem,
    task_retry_limit,
)

FAILED = FailedTask(
    error_message="exit status 1",
    exit_message="",
    output_tail=["cloning", "fatal: could not read Username for github.com", "done"],
    exit_code="1",
    failed_command="git clone https://github.com/x/y",
    job_type="build",
    task_type="checkout",
    platform="linux",
)


def test_regex_matches_output_tail_and_message() -> None:
    rule = ErrorRule(error_code="ERR_GIT_AUTH", regex=r"could not read Username")
    assert match_rule([rule], FAILED) is rule
    by_message = ErrorRule(error_code="ERR_STATUS", regex=r"^exit status \d+$")
    assert match_rule([by_message], FAILED) is by_message
    assert match_rule([ErrorRule(error_code="X", regex="no such text")], FAILED) is None


@pytest.mark.parametrize(
    ("field", "value", "matches"),
    [
        ("job_type", "build", True), ("job_type", "*", True), ("job_type", "deploy", False),
        ("task_type_scope", "checkout", True), ("task_type_scope", "test", False),
        ("platform_scope", "linux", True), ("platform_scope", "windows", False),
        ("command_scope", "git clone", True), ("command_scope", "npm", False),
    ],
)  # fmt: skip
def test_scopes_narrow_a_rule(field: str, value: str, matches: bool) -> None:
    rule = ErrorRule(error_code="E", regex="fatal", **{field: value})
    assert (match_rule([rule], FAILED) is rule) is matches


def test_exit_code_alone_or_with_regex() -> None:
    assert match_rule([ErrorRule(error_code="E1", exit_code=1)], FAILED) is not None
    assert match_rule([ErrorRule(error_code="E2", exit_code=2)], FAILED) is None
    assert match_rule([ErrorRule(error_code="E3", exit_code=1, regex="nothing like it")], FAILED) is None
    assert match_rule([ErrorRule(error_code="E4")], FAILED) is None  # neither: matches nothing


def test_own_rules_before_global_then_by_error_code() -> None:
    global_rule = ErrorRule(error_code="A_GLOBAL", regex="fatal", rule_id=1)
    own_rule = ErrorRule(error_code="Z_OWN", regex="fatal", own=True, rule_id=2)
    assert match_rule([global_rule, own_rule], FAILED) is own_rule
    b = ErrorRule(error_code="B", regex="fatal", rule_id=3)
    a = ErrorRule(error_code="A", regex="fatal", rule_id=4)
    assert match_rule([b, a], FAILED) is a


def test_bad_regex_never_matches_and_is_named() -> None:
    assert match_rule([ErrorRule(error_code="E", regex="(")], FAILED) is None
    assert regex_problem("(") and regex_problem("a+") is None


def test_retry_limits() -> None:
    assert task_retry_limit(1, None) == 1
    assert task_retry_limit(1, ErrorRule(error_code="E", action=RETRY_TASK, retry=3)) == 3
    assert task_retry_limit(5, ErrorRule(error_code="E", action=RETRY_TASK, retry=3)) == 5
    assert task_retry_limit(2, ErrorRule(error_code="E", action=RETRY_JOB, retry=3)) == 2
    assert task_retry_limit(2, ErrorRule(error_code="E", action=HARD_FAILURE)) == 0
    assert task_retry_limit(2, ErrorRule(error_code="E", hard_failure=True)) == 0
    assert job_retry_limit(0, ErrorRule(error_code="E", action=RETRY_JOB, retry=2)) == 2
    assert job_retry_limit(1, ErrorRule(error_code="E", action=RETRY_TASK, retry=4)) == 1
    assert job_retry_limit(3, ErrorRule(error_code="E", hard_failure=True)) == 0
