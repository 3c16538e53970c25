"""The queen's pipelines (jobs.queen.starts, dispatch, answers) decide the same for a whole pass
as for one item: they read and write many items at once, and write the unusual ones one by one."""

import time
from dataclasses import replace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ants.messaging import InProcessTransport
from ants.protocol import STATUS_COMPLETED, STATUS_EXECUTING, STATUS_FAILED, AntRegistration, TaskResponse
from jobs.domain.context import secrets_and_values_many
from jobs.models import JobConfig, JobRequest, TaskExecution
from jobs.queen import starts
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs.models import OrgConfig, UserConfig

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = """\
job_type: b-chain
max_concurrency: 100
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
  on_completed: two
- task_type: two
  method: SHELL
  script: ["true"]
"""

RETRIED = """\
job_type: b-retried
max_concurrency: 100
tasks:
- task_type: one
  method: SHELL
  retry: 1
  script: ["false"]
"""


TEMPLATED = """\
job_type: b-templated
max_concurrency: 100
skip_if: {{if eq .Branch "main"}}false{{else}}true{{end}}
tasks:
- task_type: one
  method: SHELL
  script: ["echo {{.Branch}}"]
"""


def make_engine(alice, capacity: int = 10, prefetch: int = 0) -> Engine:  # type: ignore[no-untyped-def]
    for text in (CHAIN, RETRIED, TEMPLATED):
        definition_upload(org_id=alice.org_id, user=alice.user, text=text)
    resources = ResourceManager(prefetch=prefetch)
    resources.heard(AntRegistration(ant_id="ant-b", max_capacity=capacity, methods=["SHELL"]))
    return Engine(InProcessTransport(), resources)


def submit(alice, job_type: str = "b-chain", **params: str) -> JobRequest:  # type: ignore[no-untyped-def]
    return request_submit(org_id=alice.org_id, user=alice.user, job_type=job_type, params=params)


def answer(task: TaskExecution, status: str, attempt: int | None = None) -> TaskResponse:
    task = TaskExecution.objects.select_related("job_execution").get(pk=task.pk)
    return TaskResponse(
        task_execution_id=task.pk, job_request_id=task.job_execution.job_request_id,
        attempt=task.attempt if attempt is None else attempt, ant_id="ant-b", task_type=task.task_type,
        status=status, exit_code="1" if status == STATUS_FAILED else "0",
    )  # fmt: skip


def test_config_values_of_many_requests(alice, bob):  # type: ignore[no-untyped-def]
    make_engine(alice)
    definition_upload(org_id=bob.org_id, user=bob.user, text=CHAIN)
    org = OrgConfig(organization_id=alice.org_id, name="Region", secret=False)
    org.set_value("eu")
    token = OrgConfig(organization_id=alice.org_id, name="Token", secret=True)
    token.set_value("s3cret")
    job = JobConfig(organization_id=alice.org_id, job_type="b-chain", name="Region", secret=True)
    job.set_value("us")
    other = OrgConfig(organization_id=bob.org_id, name="Region", secret=False)
    other.set_value("globex")
    for row in (org, token, job, other):
        row.save()
    requests = [
        submit(alice, Token="from-param"),
        submit(alice, "b-retried"),
        request_submit(org_id=bob.org_id, user=bob.user, job_type="b-chain", params={}),
    ]
    many = secrets_and_values_many(requests)
    assert many[requests[0].pk] == ({"Region": "us", "Token": "from-param"}, {"Region", "Token"})
    assert many[requests[1].pk] == ({"Region": "eu", "Token": "s3cret"}, {"Token"})
    assert many[requests[2].pk] == ({"Region": "globex"}, set())


def test_picked_requests_bring_their_params(alice, bob, monkeypatch):  # type: ignore[no-untyped-def]
    """The scheduler's pick brings each request's params and whether it has configs: the values
    are those of a plain load, and a request with params and no configs reads nothing more."""
    engine = make_engine(alice)
    definition_upload(org_id=bob.org_id, user=bob.user, text=CHAIN)
    for name, value, secret in (("Region", "eu", False), ("Token", "s3cret", True)):
        row = OrgConfig(organization_id=alice.org_id, name=name, secret=secret)
        row.set_value(value)
        row.save()
    requests = [
        submit(alice, Token="from-param"),
        submit(alice, "b-retried"),
        request_submit(org_id=bob.org_id, user=bob.user, job_type="b-chain", params={"Branch": "dev"}),
    ]
    picked: list[JobRequest] = []
    monkeypatch.setattr(starts, "start", lambda parts, batch: picked.extend(batch) or 0)
    engine.schedule()
    by_pk = {r.pk: r for r in picked}
    assert sorted(by_pk) == sorted(r.pk for r in requests)
    plain = secrets_and_values_many([JobRequest.objects.get(pk=r.pk) for r in requests])
    assert plain[requests[0].pk] == ({"Region": "eu", "Token": "from-param"}, {"Token"})
    assert plain[requests[2].pk] == ({"Branch": "dev"}, set())
    assert secrets_and_values_many([by_pk[r.pk] for r in requests]) == plain
    with CaptureQueriesContext(connection) as queries:
        assert secrets_and_values_many([by_pk[requests[2].pk]])[requests[2].pk] == plain[requests[2].pk]
    assert len(queries) == 0


def test_a_users_configs_of_another_organization_stay_there(alice, bob):  # type: ignore[no-untyped-def]
    """Bob kept a config from when he was in acme: in a batch with acme's requests, his globex
    request must not see it (nor acme's request, which is not his)."""
    make_engine(alice)
    definition_upload(org_id=bob.org_id, user=bob.user, text=CHAIN)
    old = UserConfig(organization_id=alice.org_id, user=bob.user, name="Token", secret=True)
    old.set_value("acme-era")
    old.save()
    mine = UserConfig(organization_id=bob.org_id, user=bob.user, name="Region", secret=False)
    mine.set_value("globex-own")
    mine.save()
    requests = [
        submit(alice),
        request_submit(org_id=bob.org_id, user=bob.user, job_type="b-chain", params={}),
    ]
    many = secrets_and_values_many(requests)
    assert many[requests[0].pk] == ({}, set())
    assert many[requests[1].pk] == ({"Region": "globex-own"}, set())


def test_dispatch_respects_room_and_prefetch(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice, capacity=2, prefetch=1)
    engine.resources.ants["ant-b"].run_secs = 0.01  # its tasks are short
    for _ in range(6):
        submit(alice)
    assert engine.schedule() == 6
    # two slots and one task ahead per slot: four go with their start, two wait READY
    assert TaskExecution.objects.filter(task_state="STARTED", ant_id="ant-b").count() == 4
    assert engine.dispatch_ready() == 0  # no room: they say why
    waiting = JobRequest.objects.filter(job_state="READY")
    assert waiting.count() == 2
    assert all("waiting for room on an ant" in r.state_message for r in waiting)
    assert engine.dispatch_ready() == 0


def test_answers_teach_how_far_ahead_to_send(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice, prefetch=8)
    ant = engine.resources.ants["ant-b"]
    for round_ in range(2):  # the batch path, then the one-at-a-time path (a failed answer)
        for _ in range(3):
            request = submit(alice)
            engine.schedule()
            engine.dispatch_ready()
            task = TaskExecution.objects.get(job_execution__job_request=request, task_type="one")
            done = answer(task, STATUS_FAILED if round_ else STATUS_COMPLETED)
            done = replace(done, started_at=100.0, ended_at=100.001 if round_ else 100.05)
            assert engine.apply_responses([done]) == [True]
        # 50 ms tasks: two ahead per slot (0.1 s of work); then 1 ms tasks: the moving average
        # (26 ms) lets three ahead
        assert (ant.answered, ant.ahead) == ((3, 2) if not round_ else (6, 3))
    engine.resources.release("ant-b", 123, 0.001)  # not a task it was sent: nothing learnt
    assert ant.answered == 6


def test_a_read_of_mixed_answers(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice)
    plain, stale, retried = submit(alice), submit(alice), submit(alice, "b-retried")
    engine.schedule()
    engine.dispatch_ready()
    task = {r.pk: TaskExecution.objects.get(job_execution__job_request=r) for r in (plain, stale, retried)}
    answers = [
        answer(task[plain.pk], STATUS_EXECUTING),
        answer(task[plain.pk], STATUS_COMPLETED),
        answer(task[stale.pk], STATUS_COMPLETED, attempt=task[stale.pk].attempt + 5),
        answer(task[retried.pk], STATUS_FAILED),
        TaskResponse(task_execution_id=999_999, job_request_id=plain.pk, attempt=1, status=STATUS_COMPLETED),
    ]
    assert engine.apply_responses(answers) == [True, True, False, True, False]
    # the plain one went on to its next task; the stale answer changed nothing
    assert TaskExecution.objects.get(job_execution__job_request=plain, task_type="two").task_state == "READY"
    assert TaskExecution.objects.get(pk=task[stale.pk].pk).task_state == "STARTED"
    # the failed one took the one-at-a-time path: its retry rule put it back to READY
    again = TaskExecution.objects.get(pk=task[retried.pk].pk)
    assert (again.task_state, again.retried) == ("READY", 1)
    # applying the same read twice changes nothing more
    assert engine.apply_responses(answers[1:2]) == [False]


def test_answers_end_jobs_together(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice)
    requests = [submit(alice) for _ in range(3)]
    engine.schedule()
    engine.dispatch_ready()
    firsts = TaskExecution.objects.filter(job_execution__job_request__in=requests)
    assert engine.apply_responses([answer(t, STATUS_COMPLETED) for t in firsts]) == [True] * 3
    assert engine.dispatch_ready() == 3
    seconds = TaskExecution.objects.filter(task_type="two")
    assert engine.apply_responses([answer(t, STATUS_COMPLETED) for t in seconds]) == [True] * 3
    for request in requests:
        request.refresh_from_db()
        assert request.job_state == "COMPLETED"
        assert request.last_execution.job_state == "COMPLETED"
    assert engine.resources.ants["ant-b"].reserved == set()


def test_a_cancelled_job_is_not_completed_by_a_late_answer(alice):  # type: ignore[no-untyped-def]
    from jobs.services.control import request_cancel

    engine = make_engine(alice)
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    first = TaskExecution.objects.get(job_execution__job_request=request)
    late = answer(first, STATUS_COMPLETED)
    request_cancel(request=request)
    assert engine.apply_responses([late]) == [False]
    request.refresh_from_db()
    assert request.job_state == "CANCELLED"
    assert not TaskExecution.objects.filter(job_execution__job_request=request, task_type="two").exists()


def test_a_busy_ant_keeps_tasks_waiting_in_its_stream(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice, capacity=1, prefetch=1)
    engine.resources.ants["ant-b"].run_secs = 0.01
    engine.ack_timeout_secs = 0.0
    submit(alice)
    submit(alice)
    assert engine.schedule() == 2  # both sent with their start: one slot, one task ahead
    assert TaskExecution.objects.filter(task_state="STARTED").count() == 2
    busy = AntRegistration(ant_id="ant-b", max_capacity=1, methods=["SHELL"], current_load=1)
    engine.resources.heard(busy)
    engine.check_timeouts()
    assert TaskExecution.objects.filter(task_state="STARTED").count() == 2
    idle = AntRegistration(ant_id="ant-b", max_capacity=1, methods=["SHELL"], current_load=0,
                           ant_started_at=busy.ant_started_at)  # fmt: skip
    engine.resources.clock = lambda: time.time() + 2  # heard well after the tasks were sent
    engine.resources.heard(idle)
    # an ant with room that has not taken its task in time lost the message: sent again
    assert engine.check_timeouts() == 2
    assert TaskExecution.objects.filter(task_state="READY").count() == 2


def test_a_task_its_ant_ended_without_an_answer_is_sent_again(alice):  # type: ignore[no-untyped-def]
    """A database that lost its last commits in a crash can lose an applied answer the queen already
    acknowledged: the task stays EXECUTING while its ant says it runs nothing. Once the ant's
    heartbeats have not listed it for ANSWER_LOST_SECS, it goes back to READY; while they list
    it (a long task), it stays."""
    from jobs.queen.resources import ANSWER_LOST_SECS

    engine = make_engine(alice)
    now = [time.time()]
    engine.resources.clock = lambda: now[0]
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    task = TaskExecution.objects.get(job_execution__job_request=request)
    assert engine.apply_responses([answer(task, STATUS_EXECUTING)]) == [True]
    started = engine.resources.ants["ant-b"].reg.ant_started_at

    def heartbeat(running: bool) -> None:
        now[0] += 5
        allocations = {str(request.pk): {"one": STATUS_EXECUTING}} if running else {}
        engine.resources.heard(AntRegistration(ant_id="ant-b", max_capacity=10, methods=["SHELL"],
                                               ant_started_at=started, allocations=allocations,
                                               created_at=now[0]))  # fmt: skip

    for _ in range(int(ANSWER_LOST_SECS / 5) + 2):  # a long task: listed all along
        heartbeat(running=True)
        assert engine.check_timeouts() == 0
    heartbeat(running=False)  # it ended; its answer never comes
    assert engine.check_timeouts() == 0  # not yet: an answer may still be on its way
    heartbeat(running=True)  # listed again: the clock starts over
    engine.check_timeouts()
    for _ in range(int(ANSWER_LOST_SECS / 5)):
        heartbeat(running=False)
        assert engine.check_timeouts() == 0
    heartbeat(running=False)
    assert engine.check_timeouts() == 1
    task.refresh_from_db()
    assert task.task_state == "READY" and "answer was lost" in task.error_message
    assert task.earlier_attempts[-1]["state"] == "LOST" and task.earlier_attempts[-1]["attempt"] == 1


def test_tasks_go_ahead_by_how_long_they_hold_a_slot():
    resources = ResourceManager(prefetch=4, prefetch_secs=0.1)
    resources.heard(AntRegistration(ant_id="ant-p", max_capacity=2, methods=["SHELL"]))
    ant = resources.ants["ant-p"]
    assert ant.free == 2  # nothing known about its tasks yet: only its slots
    resources.reserve("ant-p", 99)
    resources.unreserve("ant-p", 99)  # reserved, then not sent: no answer to learn from
    assert (ant.answered, ant.reserved) == (0, set())

    def run(task_id: int, secs: float | None) -> None:
        resources.reserve("ant-p", task_id)
        resources.release("ant-p", task_id, secs)

    for task_id in range(3):
        run(task_id, 0.005)
    assert ant.free == 10  # short tasks: as many ahead as run in 0.1 s, at most four per slot
    for task_id in range(3, 30):
        run(task_id, 0.04)
    assert ant.free == 6  # 40 ms tasks: two ahead per slot (0.1 s of work)
    for task_id in range(30, 40):
        run(task_id, 30.0)
    assert ant.free == 2  # long tasks: none waits behind another
    run(40, None)  # an answer without run times (a cancel) teaches nothing
    assert ant.answered == 40
    resources.release("ant-p", 41, 0.0)  # never reserved (a late answer): nothing either
    assert ant.answered == 40


def test_templated_and_static_requests_start_together(alice):  # type: ignore[no-untyped-def]
    engine = make_engine(alice)
    main = submit(alice, "b-templated", Branch="main")
    dev = submit(alice, "b-templated", Branch="dev")
    static = submit(alice)
    assert engine.schedule() == 3
    dev.refresh_from_db()
    assert (dev.job_state, dev.error_message) == ("FILTERED", "skip_if is true: the request was filtered")
    assert not TaskExecution.objects.filter(job_execution__job_request=dev).exists()
    # both first tasks went to the ant with their start
    started = TaskExecution.objects.filter(task_state="STARTED")
    assert {t.job_execution.job_request_id for t in started} == {main.pk, static.pk}
    sent = {d.message.job_request_id: d.message for d in engine.transport.read_tasks("ant-b", "c", 0, 10)}
    assert sent[main.pk].spec["script"] == ["echo main"]
    assert sent[main.pk].variables["Branch"] == "main"


@pytest.mark.parametrize("batch", [1, 40])
def test_started_first_tasks_are_written_with_their_executions(alice, batch):  # type: ignore[no-untyped-def]
    """A start whose first tasks go to an ant at once writes the executions, points the requests
    at them and creates the tasks STARTED, attempt 1, on the ant's current run, and sends each
    its message; one start or forty alike."""
    engine = make_engine(alice, capacity=batch)
    incarnation = engine.resources.incarnation("ant-b")
    requests = [submit(alice) for _ in range(batch)]
    assert engine.schedule(limit=50) == batch
    sent = {d.message.task_execution_id: d.message for d in engine.transport.read_tasks("ant-b", "c", 0, 100)}
    for request in requests:
        request.refresh_from_db()
        execution = request.last_execution
        assert (request.job_state, execution.job_state) == ("EXECUTING", "EXECUTING")
        (task,) = TaskExecution.objects.filter(job_execution=execution)
        assert (task.task_type, task.task_state, task.attempt, task.task_order) == ("one", "STARTED", 1, 0)
        assert (task.ant_id, task.ant_started_at, task.organization_id) == (
            "ant-b",
            incarnation,
            alice.org_id,
        )
        assert task.started_at is not None and task.method == "SHELL"
        message = sent.pop(task.pk)
        assert (message.job_request_id, message.job_execution_id, message.ant_started_at) == (
            request.pk,
            execution.pk,
            incarnation,
        )
        assert task.pk in engine.resources.ants["ant-b"].reserved  # its slot is taken until it answers
    assert not sent
