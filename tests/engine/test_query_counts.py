"""Query budgets of the hot paths: submit, schedule (start a request), dispatch a task, apply an
ant's EXECUTING and final responses. A change that adds a query per task fails here instead of
silently slowing every job down (docs/performance.md has the measurements behind the budgets).

Each budget is the exact count today; the comment lists what each query is. Counts are the
same on SQLite and PostgreSQL (savepoints are counted as queries by Django's capture).
"""

import os
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ants.messaging import InProcessTransport
from ants.protocol import STATUS_COMPLETED, STATUS_EXECUTING, AntRegistration, TaskResponse
from jobs.domain.specs import graph_of
from jobs.models import JobRequest, TaskExecution
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

# budgets of the fast path (jobs/fastsql.py), kept on even in a FORMICARY_FAST_SQL=false run
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_sql_on")]
MARKER = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.I)

CHAIN = """\
job_type: qc-chain
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

TEMPLATED = """\
job_type: qc-templated
max_concurrency: 100
tasks:
- task_type: one
  method: SHELL
  script: ["echo {{.Name}}"]
"""


class Budget:
    """``with Budget(n, "what"):`` fails with the captured SQL when more than ``n`` queries ran."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what = limit, what
        self.ctx = CaptureQueriesContext(connection)

    def __enter__(self) -> "Budget":
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.__exit__(*exc)
        if exc[0] is None:
            queries = self.statements
            if os.environ.get("QUERY_COUNTS_REPORT"):
                print(f"\nQC {self.what}: {len(queries)}\n" + "\n".join(f"  {q[:160]}" for q in queries))
            listing = "\n".join(f"{i + 1}. {q[:300]}" for i, q in enumerate(queries))
            assert len(queries) <= self.limit, (
                f"{self.what}: {len(queries)} queries > {self.limit}:\n{listing}"
            )

    @property
    def statements(self) -> list[str]:
        """The SQL statements run, without transaction markers (BEGIN, COMMIT, savepoints), which
        SQLite and PostgreSQL report differently."""
        return [q["sql"] for q in self.ctx.captured_queries if not MARKER.match(q["sql"])]

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def engine(alice):  # type: ignore[no-untyped-def]
    for text in (CHAIN, TEMPLATED):
        definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=text)
        graph_of(definition.pk)  # the queen reads a version's text once; that read is not per task
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="ant-q", max_capacity=10, methods=["SHELL"]))
    return Engine(InProcessTransport(), resources)


def submit(alice, job_type: str = "qc-chain", **params: str) -> JobRequest:  # type: ignore[no-untyped-def]
    return request_submit(org_id=alice.org_id, user=alice.user, job_type=job_type, params=params)


def ready_task(request: JobRequest) -> TaskExecution:
    return TaskExecution.objects.get(job_execution__job_request=request, task_state="READY")


def response(task: TaskExecution, status: str) -> TaskResponse:
    task = TaskExecution.objects.select_related("job_execution").get(pk=task.pk)
    return TaskResponse(
        task_execution_id=task.pk, job_request_id=task.job_execution.job_request_id, attempt=task.attempt,
        ant_id="ant-q", task_type=task.task_type, status=status, exit_code="0" if status != STATUS_EXECUTING else None,
    )  # fmt: skip


def respond(engine: Engine, task: TaskExecution, status: str) -> bool:
    return engine.apply_response(response(task, status))


def test_submit(alice, engine):  # type: ignore[no-untyped-def]
    submit(alice)  # warm caches (content types, the user's organization)
    with Budget(2, "submit without params"):
        # 1. the organization's latest version of the job type (a few columns; public plugins
        #    are looked up only when the organization has none)
        # 2. INSERT the request (no transaction: it is the only write)
        submit(alice)
    with Budget(3, "submit with params"):
        # as above, plus one bulk INSERT of all params (request and params in one transaction)
        submit(alice, A="1", B="2", C="3")


def test_schedule_starts_a_request(alice, engine):  # type: ignore[no-untyped-def]
    submit(alice)
    # PostgreSQL: 6 and 7 are one statement (WITH new AS (INSERT ...) UPDATE ... FROM new)
    with Budget(7 if connection.vendor == "postgresql" else 8, "schedule one pending request"):
        # 1. running requests per job type (concurrency limits)
        # 2. the pick: pending requests due, by priority then age, with their definitions,
        #    whether they have configs or params and whether their organizations have limits
        #    (compiled once per shape, one round trip; orgs.usage reads the limits only then)
        # 3. lock the job types' latest definitions (SELECT ... FOR UPDATE; serialises starts)
        # 4. running requests of those job types
        # 5. claim: UPDATE requests PENDING -> READY ... RETURNING (hard_reset, last execution)
        # 6. INSERT the executions (EXECUTING: the ant has room for the first task)
        # 7. UPDATE request.last_execution and READY -> EXECUTING (one statement)
        # 8. INSERT the first tasks, STARTED on the ant (no READY version, no dispatch pass)
        # A definition without template actions is not rendered, and one without configs or
        # params loads no template data (the pick says whether there are any).
        assert engine.schedule() == 1
    task = TaskExecution.objects.get()
    assert (task.task_state, task.ant_id, task.attempt) == ("STARTED", "ant-q", 1)
    assert JobRequest.objects.get().job_state == "EXECUTING"


def test_schedule_cost_does_not_grow_with_the_batch(alice, engine):  # type: ignore[no-untyped-def]
    for _ in range(12):
        submit(alice)
    with Budget(8 if connection.vendor == "postgresql" else 9, "schedule twelve pending requests"):
        # the same statements start all twelve: ten first tasks go to the ant's ten slots, and
        # one more INSERT makes the other two READY for the dispatcher
        assert engine.schedule(limit=20) == 12
    assert TaskExecution.objects.filter(task_state="STARTED").count() == 10
    assert TaskExecution.objects.filter(task_state="READY").count() == 2


def schedule_to_ready(engine: Engine, limit: int = 50) -> int:
    """Start pending requests while the ant has no room: their first tasks wait READY for the
    dispatcher, whose cost the tests below take."""
    taken = [-(i + 1) for i in range(10)]  # ids no task has
    for i in taken:
        engine.resources.reserve("ant-q", i)
    try:
        return engine.schedule(limit=limit)
    finally:
        for i in taken:
            engine.resources.unreserve("ant-q", i)


def test_schedule_with_templates_loads_template_data(alice, engine):  # type: ignore[no-untyped-def]
    submit(alice, "qc-templated", Name="x")
    with Budget(7 if connection.vendor == "postgresql" else 8, "schedule a templated request"):
        # as for a static one: the request's params come with the pick (``param_rows``); the
        # configs of a batch that has any would be one UNION ALL more, and a request that ran
        # before one read of its artifact URLs
        assert engine.schedule() == 1


def test_dispatch_a_task(alice, engine):  # type: ignore[no-untyped-def]
    submit(alice)
    schedule_to_ready(engine)
    with Budget(5, "dispatch the first task"):
        # 1. READY tasks due: a few columns each (state of the request, definition id)
        # 2. the tasks that go with the columns of their executions and requests the dispatch
        #    reads, and whether they have configs, params or artifacts of earlier tasks (EXISTS)
        # 3. UPDATE tasks READY -> STARTED ... RETURNING the new attempt (one per ant)
        # 4-5. UPDATE executions and requests READY -> EXECUTING (first tasks only)
        assert engine.dispatch_ready() == 1


def test_dispatch_loads_configs_and_params_only_when_there_are_some(alice, engine):  # type: ignore[no-untyped-def]
    submit(alice, "qc-templated", Name="x")
    schedule_to_ready(engine)
    with Budget(6, "dispatch a task with params"):
        # as above, plus one UNION ALL of org configs, job configs and the request's params
        assert engine.dispatch_ready() == 1
    sent = engine.transport.read_tasks("ant-q", "c", 0, 10)
    assert sent[0].message.variables["Name"] == "x"


def test_dispatch_cost_does_not_grow_with_the_batch(alice, engine):  # type: ignore[no-untyped-def]
    for _ in range(8):
        submit(alice)
    schedule_to_ready(engine)
    with Budget(5, "dispatch eight first tasks"):
        # the same five statements send all eight
        assert engine.dispatch_ready() == 8
    assert TaskExecution.objects.filter(task_state="STARTED", ant_id="ant-q").count() == 8


def test_a_full_ant_makes_waiting_tasks_cheap(alice, engine):  # type: ignore[no-untyped-def]
    engine.resources.heard(AntRegistration(ant_id="ant-q", max_capacity=1, methods=["SHELL"]))
    for _ in range(3):
        submit(alice)
    engine.schedule()  # the first goes to the ant's one slot; the other two wait READY
    assert engine.dispatch_ready() == 0  # and are told why
    with Budget(1, "READY tasks while every ant is full"):
        # only the ids of tasks not yet told why they wait (all were told in the pass before)
        assert engine.dispatch_ready() == 0
    waiting = JobRequest.objects.filter(job_state="READY")
    assert waiting.count() == 2 and all("waiting for room" in r.state_message for r in waiting)


def test_dispatch_a_later_task_skips_job_executing(alice, engine):  # type: ignore[no-untyped-def]
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    first = TaskExecution.objects.get(job_execution__job_request=request)
    respond(engine, first, STATUS_COMPLETED)
    with Budget(3, "dispatch a later task"):
        # as for the first task without the two READY -> EXECUTING updates
        assert engine.dispatch_ready() == 1


def test_apply_executing(alice, engine):  # type: ignore[no-untyped-def]
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    task = TaskExecution.objects.get(job_execution__job_request=request)
    resp = response(task, STATUS_EXECUTING)
    with Budget(1, "apply EXECUTING"):
        # 1. UPDATE task STARTED -> EXECUTING (conditional on the attempt; nothing is loaded)
        assert engine.apply_response(resp)


def test_an_end_read_with_its_executing_writes_only_the_end(alice, engine):  # type: ignore[no-untyped-def]
    requests = [submit(alice) for _ in range(3)]
    engine.schedule()
    engine.dispatch_ready()
    firsts = list(TaskExecution.objects.filter(job_execution__job_request__in=requests))
    read = [response(t, STATUS_EXECUTING) for t in firsts] + [response(t, STATUS_COMPLETED) for t in firsts]
    with Budget(4, "apply three EXECUTING answers and the three ends in the same read"):
        # what the ends alone cost (test_apply_cost_does_not_grow_with_the_batch): no UPDATE
        # to EXECUTING that the next statement would undo
        assert engine.apply_responses(read) == [True] * 6
    assert {t.task_state for t in TaskExecution.objects.filter(pk__in=[t.pk for t in firsts])} == {
        "COMPLETED"
    }


def test_apply_completed_readies_the_next_task(alice, engine):  # type: ignore[no-untyped-def]
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    task = TaskExecution.objects.get(job_execution__job_request=request)
    respond(engine, task, STATUS_EXECUTING)
    resp = response(task, STATUS_COMPLETED)
    with Budget(5, "apply COMPLETED with a next task"):
        # 1. the task with its execution, request and definition
        # 2. UPDATE task -> COMPLETED (conditional on state and attempt)
        # 3. the request's state (has it been cancelled meanwhile?)
        # 4. the execution's tasks (is the next one a revisit? its order)
        # 5. INSERT the next task (READY), in a savepoint
        assert engine.apply_response(resp)
    assert ready_task(request).task_type == "two"


def test_apply_completed_ends_the_job(alice, engine):  # type: ignore[no-untyped-def]
    request = submit(alice)
    engine.schedule()
    engine.dispatch_ready()
    first = TaskExecution.objects.get(job_execution__job_request=request)
    respond(engine, first, STATUS_COMPLETED)
    engine.dispatch_ready()
    second = TaskExecution.objects.get(job_execution__job_request=request, task_type="two")
    resp = response(second, STATUS_COMPLETED)
    with Budget(5, "apply COMPLETED of the last task"):
        # 1. the task with its execution, request and definition
        # 2. UPDATE task -> COMPLETED
        # 3. UPDATE request -> COMPLETED (conditional on a running state) ... RETURNING
        # 4. its finished count (one upsert)
        # 5. UPDATE execution -> COMPLETED
        assert engine.apply_response(resp)
    request.refresh_from_db()
    assert request.job_state == "COMPLETED"


def test_apply_cost_does_not_grow_with_the_batch(alice, engine):  # type: ignore[no-untyped-def]
    requests = [submit(alice) for _ in range(6)]
    engine.schedule()
    engine.dispatch_ready()
    firsts = list(TaskExecution.objects.filter(job_execution__job_request__in=requests))
    executing = [response(t, STATUS_EXECUTING) for t in firsts]
    with Budget(1, "apply six EXECUTING answers"):
        # 1. UPDATE tasks STARTED -> EXECUTING for the attempt number they all share
        assert engine.apply_responses(executing) == [True] * 6
    finals = [response(t, STATUS_COMPLETED) for t in firsts]
    with Budget(4, "apply six COMPLETED answers with next tasks"):
        # 1. the tasks, locked, with their executions, requests and definitions
        # 2. UPDATE tasks -> COMPLETED (one executemany)
        # 3. the executions' tasks (is a next one a revisit? its order)
        # 4. INSERT the next tasks (READY)
        assert engine.apply_responses(finals) == [True] * 6
    assert TaskExecution.objects.filter(task_type="two", task_state="READY").count() == 6
    engine.dispatch_ready()
    seconds = [response(t, STATUS_COMPLETED) for t in TaskExecution.objects.filter(task_type="two")]
    with Budget(5, "apply six COMPLETED answers that end their jobs"):
        # 1. the tasks, locked; 2. UPDATE tasks -> COMPLETED (executemany);
        # 3. UPDATE requests -> COMPLETED ... RETURNING; 4. their finished counts, one upsert;
        # 5. UPDATE their executions
        assert engine.apply_responses(seconds) == [True] * 6
    assert JobRequest.objects.filter(pk__in=[r.pk for r in requests], job_state="COMPLETED").count() == 6
