"""What follows a task's end (``policy.decide``), table-driven over every kind of decision; pure,
no database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobs.definition import TaskSpec
from jobs.definition.error_rules import HARD_FAILURE, RETRY_JOB, RETRY_TASK, SUSPEND_JOB, ErrorRule
from jobs.definition.model import JobSpec
from jobs.definition.policy import (
    Decision,
    EndJob,
    Failure,
    Ignore,
    PauseJob,
    RepeatTask,
    RetryJob,
    RetryTask,
    RunTask,
    SuspendJob,
    TaskEnd,
    decide,
)


def task(task_type: str = "build", **kw: object) -> TaskSpec:
    return TaskSpec(task_type=task_type, **kw)  # type: ignore[arg-type]


BUILD = task(on_completed="test", on_exit_code={"2": "EXECUTING", "3": "RESTART_TASK", "4": "RESTART_JOB",
                                                 "5": "PAUSE_JOB", "6": "FATAL", "7": "COMPLETED", "8": "FAILED"},
             pause_time=30, delay_between_retries=2)  # fmt: skip
TEST = task("test", retry=2, delay_between_retries=5, on_completed="deploy")
DEPLOY = task("deploy")
CLEANUP = task("cleanup", always_run=True)
GRAPH = JobSpec(job_type="ci", tasks=[BUILD, TEST, DEPLOY, CLEANUP], retry=1, delay_between_retries=60)
BACKOFF = replace(TEST, retry_backoff_policy={"min": 1.0, "max": 10.0, "factor": 2.0, "jitter": 0.0})


def end(t: TaskSpec, state: str, exit_code: str | None = None, **kw: object) -> TaskEnd:
    return TaskEnd(task=t, graph=GRAPH, state=state, exit_code=exit_code, **kw)  # type: ignore[arg-type]


def ran(*names: str):  # type: ignore[no-untyped-def]
    return lambda: set(names)


FIRST_FAILURE = Failure("deploy", "ERR_TASK_FAILED", "boom")
CASES = [
    # (name, snapshot, expected decision)
    ("job no longer running", end(BUILD, "COMPLETED", job_state="CANCELLED"), Decision(Ignore(), "COMPLETED")),
    ("paused job still decides", end(BUILD, "COMPLETED", job_state="PAUSED"), Decision(RunTask("test"), "COMPLETED")),
    ("next task", end(BUILD, "COMPLETED", "0"), Decision(RunTask("test"), "COMPLETED")),
    ("task retry, fixed delay", end(TEST, "FAILED", "1"), Decision(RetryTask(5.0, "retry 1 of 2"), "FAILED")),
    ("task retry, backoff", end(BACKOFF, "FAILED", task_retried=1),
     Decision(RetryTask(2.0, "retry 2 of 2"), "FAILED")),
    ("task retry, backoff capped", end(BACKOFF, "FAILED", task_retried=1, job_retried=0,
                                       rule=ErrorRule("ERR_X", action=RETRY_TASK, retry=9)),
     Decision(RetryTask(2.0, "retry 2 of 2"), "FAILED")),
    ("error rule retries the task more", end(TEST, "FAILED", task_retried=2,
                                             rule=ErrorRule("ERR_X", action=RETRY_TASK, retry=5)),
     Decision(RetryTask(5.0, "retry 3 of 2"), "FAILED")),
    ("repeat (EXECUTING target)", end(BUILD, "COMPLETED", "2"), Decision(RepeatTask(2.0, False, "repeat"), "COMPLETED")),
    ("restart the task", end(BUILD, "FAILED", "3"), Decision(RepeatTask(2.0, True, "restart_task"), "FAILED")),
    ("restart the job", end(BUILD, "FAILED", "4"), Decision(RetryJob(60.0, True, "RESTART_JOB 1"), "FAILED")),
    ("restart the job without retry: three times", end(BUILD, "FAILED", "4", job_retried=2),
     Decision(RetryJob(60.0, True, "RESTART_JOB 3"), "FAILED")),
    ("restart limit", end(BUILD, "FAILED", "4", job_retried=3),
     Decision(EndJob("FAILED", "ERR_RESTART_LIMIT", "RESTART_JOB: restarted 3 times"), "FAILED")),
    ("pause, then on_completed", end(BUILD, "COMPLETED", "5"),
     Decision(PauseJob("paused by task build", 30.0, "test"), "COMPLETED")),
    ("pause at the end", end(replace(DEPLOY, on_exit_code={"5": "PAUSE_JOB"}), "COMPLETED", "5"),
     Decision(PauseJob("paused by task deploy", 0.0, None), "COMPLETED")),
    ("suspended by an error rule", end(TEST, "FAILED", rule=ErrorRule("ERR_DISK", action=SUSPEND_JOB)),
     Decision(SuspendJob("suspended by error code ERR_DISK", "suspended: test failed with ERR_DISK"), "FAILED")),
    ("job completes", end(DEPLOY, "COMPLETED", "0"), Decision(EndJob("COMPLETED"), "COMPLETED")),
    ("always_run after a failure", end(DEPLOY, "FAILED", error_message="boom", executed=ran("build", "test", "deploy")),
     Decision(RunTask("cleanup"), "FAILED", failure=FIRST_FAILURE)),
    ("job retry after the always_run tasks", end(CLEANUP, "COMPLETED", failed_task_type="deploy",
                                                  failure_code="ERR_TASK_FAILED", failure_message="boom",
                                                  executed=ran("build", "test", "deploy", "cleanup")),
     Decision(RetryJob(60.0, False, "job retry 1"), "COMPLETED")),
    ("job retry hard every N", TaskEnd(task=DEPLOY, graph=replace(GRAPH, tasks=[DEPLOY], retry=3, hard_reset_after_retries=2),
                                       state="FAILED", job_retried=1),
     Decision(RetryJob(60.0, True, "job retry 2"), "FAILED", "", failure=Failure("deploy", "ERR_TASK_FAILED", ""))),
    ("error rule retries the job more", TaskEnd(task=DEPLOY, graph=replace(GRAPH, tasks=[DEPLOY], retry=0),
                                                state="FAILED", error_code="ERR_NET",
                                                rule=ErrorRule("ERR_NET", action=RETRY_JOB, retry=2)),
     Decision(RetryJob(60.0, False, "job retry 1"), "FAILED", "ERR_NET", failure=Failure("deploy", "ERR_NET", ""))),
    ("job fails: retries used", end(DEPLOY, "FAILED", error_code="ERR_X", error_message="boom", job_retried=1,
                                    executed=ran("build", "test", "deploy", "cleanup")),
     Decision(EndJob("FAILED", "ERR_X", "boom"), "FAILED", "ERR_X", failure=Failure("deploy", "ERR_X", "boom"))),
    ("job fails with the first failure's error", end(CLEANUP, "FAILED", error_code="ERR_LATER", job_retried=1,
                                                      failed_task_type="deploy", failure_code="ERR_FIRST",
                                                      failure_message="first", executed=ran("cleanup")),
     Decision(EndJob("FAILED", "ERR_FIRST", "first"), "FAILED", "ERR_LATER")),
    ("FATAL: no task retry, no job retry", end(replace(TEST, on_exit_code={"6": "FATAL"}), "FAILED", "6",
                                               executed=ran("build", "test", "cleanup")),
     Decision(EndJob("FAILED", "ERR_TASK_FAILED", "task test failed"), "FAILED",
              failure=Failure("test", "ERR_TASK_FAILED", ""))),
    ("hard failure rule: no retries", end(TEST, "FAILED", executed=ran("build", "test", "cleanup"),
                                          rule=ErrorRule("ERR_X", action=HARD_FAILURE)),
     Decision(EndJob("FAILED", "ERR_TASK_FAILED", "task test failed"), "FAILED",
              failure=Failure("test", "ERR_TASK_FAILED", ""))),
    ("exit code overrides completed to failed", end(replace(BUILD, retry=1), "COMPLETED", "8"),
     Decision(RetryTask(2.0, "retry 1 of 1"), "FAILED", override=True)),
    ("exit code overrides failed to completed", end(BUILD, "FAILED", "7"),
     Decision(RunTask("test"), "COMPLETED", override=True)),
    ("a skipped task is not overridden", end(DEPLOY, "SKIPPED", "SKIPPED"), Decision(EndJob("COMPLETED"), "COMPLETED")),
    # a task cancelled by a user: its failure path, never a retry
    ("cancelled: on_failed", end(replace(TEST, on_failed="cleanup"), "CANCELLED"),
     Decision(RunTask("cleanup"), "CANCELLED", "ERR_TASK_CANCELLED")),
    ("cancelled: allow_failure goes on", end(replace(TEST, allow_failure=True), "CANCELLED"),
     Decision(RunTask("deploy"), "CANCELLED", "ERR_TASK_CANCELLED")),
    ("cancelled: no task retry, always_run first", end(TEST, "CANCELLED", error_message="cut",
                                                       executed=ran("build", "test")),
     Decision(RunTask("cleanup"), "CANCELLED", "ERR_TASK_CANCELLED",
              failure=Failure("test", "ERR_TASK_CANCELLED", "cut"))),
    ("cancelled: no job retry", end(TEST, "CANCELLED", error_message="cut", executed=ran("build", "test", "cleanup")),
     Decision(EndJob("FAILED", "ERR_TASK_CANCELLED", "cut"), "CANCELLED", "ERR_TASK_CANCELLED",
              failure=Failure("test", "ERR_TASK_CANCELLED", "cut"))),
    ("cancelled: a RESTART_TASK route does not run it again",
     end(replace(DEPLOY, on_failed="RESTART_TASK"), "CANCELLED", executed=ran("deploy", "cleanup")),
     Decision(EndJob("FAILED", "ERR_TASK_CANCELLED", "task deploy failed"), "CANCELLED", "ERR_TASK_CANCELLED",
              failure=Failure("deploy", "ERR_TASK_CANCELLED", ""))),
    ("cancelled in a cancelled job", end(TEST, "CANCELLED", job_state="CANCELLED"), Decision(Ignore(), "CANCELLED")),
]  # fmt: skip


@pytest.mark.parametrize(("snapshot", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(snapshot: TaskEnd, expected: Decision) -> None:
    assert decide(snapshot) == expected


def test_every_action_kind_is_covered() -> None:
    kinds = {type(expected.action) for _, _, expected in CASES}
    assert kinds == {Ignore, RunTask, RetryTask, RepeatTask, SuspendJob, PauseJob, RetryJob, EndJob}


def test_history_is_read_only_when_the_job_fails() -> None:
    def forbidden() -> set[str]:
        raise AssertionError("the plain path must not read the execution's history")

    assert decide(end(BUILD, "COMPLETED", executed=forbidden)).action == RunTask("test")
    assert decide(end(DEPLOY, "COMPLETED", executed=forbidden)).action == EndJob("COMPLETED")


def test_jitter_uses_the_snapshot_draw() -> None:
    jittery = replace(TEST, retry_backoff_policy={"min": 4.0, "max": 100.0, "factor": 2.0, "jitter": 0.5})
    low, high = (decide(end(jittery, "FAILED", rand=r)).action for r in (0.0, 1.0))
    assert (low, high) == (RetryTask(2.0, "retry 1 of 2"), RetryTask(6.0, "retry 1 of 2"))
