"""Error-code rules: which rule names a failed task's error, and what it asks for.

The reference system's ``ErrorCode`` rows (``regex``, ``exit_code``, scopes, ``action``,
``retry``, ``hard_failure``) as plain data, matched here without a database. The queen loads
the rows of the task's organization and the global ones, then asks ``match_rule``.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

# the reference's ErrorCodeAction values
RETRY_TASK = "RETRY_TASK"
RETRY_JOB = "RETRY_JOB"
HARD_FAILURE = "HARD_FAILURE"
SUSPEND_JOB = "SUSPEND_JOB"
ACTIONS = (RETRY_TASK, RETRY_JOB, HARD_FAILURE, SUSPEND_JOB)
# how many of the last output lines a regex is matched against
OUTPUT_TAIL_LINES = 100


@dataclass(frozen=True)
class ErrorRule:
    error_code: str
    regex: str = ""
    exit_code: int | None = None
    job_type: str = ""
    task_type_scope: str = ""
    platform_scope: str = ""
    command_scope: str = ""
    action: str = ""
    retry: int = 0
    hard_failure: bool = False
    # the organization's own rules are asked before the global ones
    own: bool = False
    rule_id: int = 0

    @property
    def no_retry(self) -> bool:
        """The failure is final: neither the task nor the job is retried."""
        return self.hard_failure or self.action == HARD_FAILURE


@dataclass(frozen=True)
class FailedTask:
    """What is known of a failed task when its answer arrives."""

    error_message: str = ""
    exit_message: str = ""
    output_tail: Sequence[str] = ()
    exit_code: str = ""
    failed_command: str = ""
    job_type: str = ""
    task_type: str = ""
    platform: str = ""


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a bad row never matches (the API refuses them; the admin may not)


def _in_scope(scope: str, value: str) -> bool:
    return scope in ("", "*") or scope == value


def _matches(rule: ErrorRule, failed: FailedTask) -> bool:
    if not (
        _in_scope(rule.job_type, failed.job_type)
        and _in_scope(rule.task_type_scope, failed.task_type)
        and _in_scope(rule.platform_scope, failed.platform)
    ):
        return False
    if rule.command_scope not in ("", "*") and rule.command_scope not in failed.failed_command:
        return False
    if rule.exit_code is not None and str(rule.exit_code) != failed.exit_code.strip():
        return False
    if not rule.regex:
        return rule.exit_code is not None  # a rule names a regex or an exit code, or matches nothing
    pattern = _compiled(rule.regex)
    if pattern is None:
        return False
    texts = (failed.error_message, failed.exit_message, *failed.output_tail[-OUTPUT_TAIL_LINES:])
    return any(text and pattern.search(text) for text in texts)


def match_rule(rules: Iterable[ErrorRule], failed: FailedTask) -> ErrorRule | None:
    """The first rule that matches: the organization's own before the global ones, then by error
    code (the reference's order), then by id."""
    ordered = sorted(rules, key=lambda r: (not r.own, r.error_code, r.rule_id))
    return next((r for r in ordered if _matches(r, failed)), None)


def task_retry_limit(spec_retry: int, rule: ErrorRule | None) -> int:
    """Retries a failed task gets: its own ``retry``, or more when a RETRY_TASK rule asks."""
    if rule is None:
        return spec_retry
    if rule.no_retry:
        return 0
    if rule.action == RETRY_TASK:
        return max(spec_retry, rule.retry)
    return spec_retry


def job_retry_limit(spec_retry: int, rule: ErrorRule | None) -> int:
    """Retries a failed job gets: its own ``retry``, or more when a RETRY_JOB rule asks."""
    if rule is None:
        return spec_retry
    if rule.no_retry:
        return 0
    if rule.action == RETRY_JOB:
        return max(spec_retry, rule.retry)
    return spec_retry
