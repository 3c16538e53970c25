"""Apply ants' answers: one pipeline for one answer or a whole read.

EXECUTING answers are one statement per attempt number. Final answers are applied in rounds (an
answer per task and per request in each, so two answers of one job never decide on the same
snapshot), each round in one transaction: the tasks are loaded and locked in one query,
finished in one statement, and what follows each is decided by the pure policy
(``jobs.definition.policy``) and carried out by ``jobs.domain.follow`` (the common decisions, the
next task and the job's end, written for the whole round at once).
"""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ants.protocol import ACTION_EXECUTE, STATUS_CANCELLED, STATUS_COMPLETED, STATUS_EXECUTING, TaskResponse
from artifacts import services as artifact_services
from jobs.definition import policy
from jobs.definition.fanout import INSTANCE_INFIX, step_of
from jobs.definition.model import JobSpec, TaskSpec
from jobs.domain import fanouts, follow, transitions
from jobs.domain.specs import graph_of, task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.queen import error_codes
from jobs.queen.compiled import CompiledLoad
from jobs.redaction import redact_errors
from jobs.states import JobState, TaskState

log = logging.getLogger(__name__)

# The columns applying an answer reads (loading four models' every column was most of a pass's
# time); the definition comes from jobs.domain.specs.graph_of, read once per version.
_E, _R = "job_execution__", "job_execution__job_request__"
_TASK = ("id", "organization_id", "job_execution", "task_type", "method", "task_state", "attempt", "ant_id",
         "started_at")  # fmt: skip
ANSWER_COLUMNS = (
    *_TASK, f"{_E}id", f"{_E}organization_id", f"{_E}job_request", f"{_E}failed_task_type", f"{_R}id",
    f"{_R}organization_id", f"{_R}job_state", f"{_R}job_definition", f"{_R}job_type", f"{_R}user_id",
    # what the policy's snapshot reads
    "retried", f"{_E}error_code", f"{_E}error_message", f"{_R}retried", f"{_R}platform",
    "fan_out_of", "fan_out_index", "context",  # a fan-out instance keeps its item in its context
)  # fmt: skip
# a release of the slot an answered task held: (ant id, task id, seconds it ran)
Release = Callable[[str, int, float | None], None]


def state_of(resp: TaskResponse) -> TaskState:
    """The task state an ant's final answer means."""
    if resp.status == STATUS_COMPLETED:
        return TaskState.COMPLETED
    return TaskState.CANCELLED if resp.status == STATUS_CANCELLED else TaskState.FAILED


def finish_fields(resp: TaskResponse, state: TaskState, error_code: str, now: Any) -> dict[str, Any]:
    """The columns a final answer writes (``transitions.FINISH_FIELDS``)."""
    return {
        "task_state": state, "exit_code": resp.exit_code or "", "exit_message": resp.exit_message[:10_000],
        "error_code": error_code[:100], "error_message": resp.error_message[:10_000],
        "failed_command": resp.failed_command[:10_000], "context": resp.task_context, "stdout": resp.stdout[-100:],
        "cost_factor": resp.cost_factor, "cpu_secs": max(resp.ran_secs or 0.0, 0.0), "ended_at": now,
        "updated_at": now,
    }  # fmt: skip


def apply(responses: list[TaskResponse], release: Release) -> list[bool | None]:
    """A result per answer: True applied, False stale or a duplicate or not a task result, None
    failed (the caller leaves it unacknowledged, so it is applied again later)."""
    results: list[bool | None] = [None] * len(responses)
    executing = [
        i for i, r in enumerate(responses) if r.action == ACTION_EXECUTE and r.status == STATUS_EXECUTING
    ]
    # a task whose end is in the same read goes from STARTED to its end at once: its EXECUTING
    # would be a write (and an event) the next statement undoes
    ended = {
        (r.task_execution_id, r.attempt)
        for r in responses
        if r.action == ACTION_EXECUTE and r.status != STATUS_EXECUTING
    }
    for i in [i for i in executing if (responses[i].task_execution_id, responses[i].attempt) in ended]:
        results[i] = True
        executing.remove(i)
    if executing:
        transitions.tasks_executing(
            [
                (responses[i].task_execution_id, responses[i].job_request_id, responses[i].attempt)
                for i in executing
            ]
        )
        for i in executing:
            results[i] = True
    rounds: list[dict[int, int]] = []  # each: task id -> answer index
    seen_tasks: dict[int, int] = {}
    seen_requests: dict[int | tuple[int, str], int] = {}
    for i, resp in enumerate(responses):
        if results[i] is not None:
            continue
        if resp.action != ACTION_EXECUTE:
            results[i] = False  # a PING or container-listing reply, not a task result
            continue
        # the instances of one fan-out step end together in a round: their step's progress is
        # counted once for the round, after all of them are written (nothing else of the job runs)
        step = step_of(resp.task_type) if INSTANCE_INFIX in resp.task_type else None
        job = resp.job_request_id if step is None else (resp.job_request_id, step)
        n = max(seen_tasks.get(resp.task_execution_id, 0), seen_requests.get(job, 0))
        seen_tasks[resp.task_execution_id] = seen_requests[job] = n + 1
        if n == len(rounds):
            rounds.append({})
        rounds[n][resp.task_execution_id] = i
    for answers in rounds:
        try:
            _apply_round(responses, answers, results, release)
        except Exception:
            for i in answers.values():
                results[i] = None  # rolled back
            if len(answers) == 1:
                log.exception("applying response for task %s failed", next(iter(answers)))
                continue
            log.exception("applying %s responses together failed: one at a time", len(answers))
            for task_id, i in answers.items():
                try:
                    _apply_round(responses, {task_id: i}, results, release)
                except Exception:
                    log.exception("applying response for task %s failed", task_id)
    return results


def _answer_load(ids: list[int]) -> "QuerySet[TaskExecution]":
    """Answered tasks of ``ids`` with what applying reads of their execution and request, locked:
    the state and attempt checked hold until the updates."""
    return (
        TaskExecution.objects.select_for_update(of=("self",))
        .select_related("job_execution__job_request")
        .only(*ANSWER_COLUMNS)
        .filter(pk__in=ids)
    )


_ANSWER_LOAD = CompiledLoad(_answer_load)


def prepare(most: int) -> None:
    """Compile the answer load for rounds of up to ``most`` tasks (queen start)."""
    with transaction.atomic():  # the load locks rows: its SQL compiles in a transaction
        _ANSWER_LOAD.prepare(most)


def _apply_round(
    responses: list[TaskResponse], answers: dict[int, int], results: list[bool | None], release: Release
) -> None:
    with transaction.atomic():
        tasks = {t.pk: t for t in _ANSWER_LOAD.load(answers)}
        finished: list[tuple[int, int, int, dict[str, Any]]] = []
        known: dict[int, tuple[str, str, datetime | None, int]] = {}
        recorded: list[tuple[TaskExecution, JobRequest, TaskResponse]] = []
        decided: list[tuple[policy.Decision, TaskExecution, JobRequest, JobSpec]] = []
        instances: list[_Ended] = []
        now = timezone.now()
        for task_id, i in answers.items():
            resp, task = responses[i], tasks.get(task_id)
            if task is None or resp.job_request_id != task.job_execution.job_request_id:
                log.warning("response for unknown task %s ignored", task_id)
                results[i] = False
                continue
            current = task.task_state in (TaskState.STARTED, TaskState.EXECUTING) and (
                resp.attempt is None or resp.attempt == task.attempt
            )
            release(task.ant_id, task.pk, resp.ran_secs if current else None)
            if not current:
                results[i] = False
                continue
            request, execution = task.job_execution.job_request, task.job_execution
            state = state_of(resp)
            # an ErrorCode row matching the failure names its error code and may ask for an action
            rule = error_codes.rule_for_failure(task, request, resp) if state == TaskState.FAILED else None
            error_code = rule.error_code if rule is not None else resp.error_code
            fields = redact_errors([request.pk], finish_fields(resp, state, error_code, now))
            finished.append((task.pk, request.pk, task.attempt, fields))
            known[task.pk] = (task.task_type, task.method, task.started_at, request.job_definition_id)
            recorded.append((task, request, resp))
            results[i] = True
            if task.fan_out_of:  # its results go to its step's aggregate, not the job context
                fields["context"] = {**resp.job_context, **resp.task_context,
                                     fanouts.ITEM: (task.context or {}).get(fanouts.ITEM, "")}  # fmt: skip
                instances.append((task, request, state, resp.exit_code, error_code, resp.error_message, rule))
                continue
            if resp.task_context or resp.job_context:
                follow.merge_context(execution, {**resp.job_context, **resp.task_context})
            if state == TaskState.CANCELLED:
                continue
            graph = graph_of(request.job_definition_id)
            spec = task_of(graph, task.task_type)
            if spec is None:  # the definition's version changed under it: nothing can follow
                decision = policy.Decision(policy.EndJob(JobState.FAILED, "ERR_UNKNOWN_TASK",
                                                         f"unknown task {task.task_type}"), state)  # fmt: skip
            else:
                decision = policy.decide(follow.snapshot(task, request, execution, graph, spec, state,
                                                         resp.exit_code, error_code, resp.error_message, rule))  # fmt: skip
            decided.append((decision, task, request, graph))
        transitions.tasks_finish(finished, known)
        artifact_services.record_from_responses(recorded)
        _carry_out(decided)
        _instances_ended(instances)


_Ended = tuple[TaskExecution, JobRequest, TaskState, str | None, str, str, Any]


def _instances_ended(instances: list[_Ended]) -> None:
    """Fan-out instances of the round: each retried or done, then each step's progress once."""
    steps: dict[tuple[int, str], tuple[JobRequest, JobExecution, JobSpec]] = {}
    for task, request, state, exit_code, error_code, error_message, rule in instances:
        graph = graph_of(request.job_definition_id)
        step = (
            task.fan_out_of if state == TaskState.CANCELLED
            else fanouts.instance_ended(task, request, task.job_execution, graph, state, exit_code, error_code,
                                        error_message, rule)
        )  # fmt: skip
        if step:
            steps[(task.job_execution_id, step)] = (request, task.job_execution, graph)
    for (execution_id, step), (request, execution, graph) in steps.items():
        fanouts.progress(execution_id, request, execution, graph, step)


def _carry_out(decided: list[tuple[policy.Decision, TaskExecution, JobRequest, JobSpec]]) -> None:
    """The round's decisions: the plain ones (the next task, the job completed) for all at once,
    the others one by one."""
    completes: dict[int, int] = {}
    nexts: list[tuple[JobExecution, TaskSpec]] = []
    for decision, task, request, graph in decided:
        action, plain = decision.action, not decision.override and decision.failure is None
        if plain and isinstance(action, policy.EndJob) and action.state == JobState.COMPLETED:
            completes[request.pk] = task.job_execution_id
        elif plain and isinstance(action, policy.RunTask) and task_of(graph, action.task_type) is not None:
            nexts.append((task.job_execution, task_of(graph, action.task_type)))  # type: ignore[arg-type]
        else:
            follow.carry_out(decision, task, request.pk, task.job_execution, graph)
    transitions.jobs_finish(completes, JobState.COMPLETED, from_states=follow.ENDS_FROM)
    follow.ready_tasks(nexts)
