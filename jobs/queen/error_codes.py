"""The error-code rule a failed task's answer matches (the rows are read here, the matching is
the pure ``jobs.definition.error_rules``)."""

from ants.protocol import TaskResponse
from jobs.definition.error_rules import ErrorRule, FailedTask, match_rule
from jobs.models import JobRequest, TaskExecution
from jobs.services.error_codes import error_rules_for


def rule_for_failure(task: TaskExecution, request: JobRequest, resp: TaskResponse) -> ErrorRule | None:
    rules = error_rules_for(request.organization_id, request.job_type)
    if not rules:
        return None
    failed = FailedTask(
        error_message=resp.error_message, exit_message=resp.exit_message, output_tail=resp.stdout,
        exit_code=resp.exit_code or "", failed_command=resp.failed_command, job_type=request.job_type,
        task_type=task.task_type, platform=request.platform,
    )  # fmt: skip
    return match_rule(rules, failed)
