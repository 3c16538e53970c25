"""The queen keeps live ants in memory and writes their rows in batches (jobs/queen/resources.py):
a heartbeat never touches the database, placement never reads it, and one statement a batch
writes every ant heard since the last one."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ants.messaging import InProcessTransport
from ants.models import AntRegistration as AntRow
from ants.protocol import AntRegistration
from jobs.models import TaskExecution
from jobs.queen.engine import Engine
from jobs.queen.resources import PERSIST_EVERY_SECS, ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

pytestmark = pytest.mark.django_db(transaction=True)

ONE = """\
job_type: rows-one
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def beat(resources: ResourceManager, ant_id: str, clock: Clock, **fields: object) -> None:
    resources.heard(AntRegistration(ant_id=ant_id, methods=["SHELL"], max_capacity=2, created_at=clock.now,
                                    ant_started_at=999_000.0, **fields))  # type: ignore[arg-type]  # fmt: skip


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The SQL sent, without the transaction's BEGIN and COMMIT."""
    return [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite splits a batch by its bound-parameter limit"
)
def test_heartbeats_are_written_in_one_statement_per_interval() -> None:
    clock = Clock()
    resources = ResourceManager(clock=clock)
    ants = [f"ant-{i:03}" for i in range(300)]
    with CaptureQueriesContext(connection) as heard:
        for ant_id in ants:
            beat(resources, ant_id, clock)
    assert statements(heard) == []  # a heartbeat writes nothing itself
    with CaptureQueriesContext(connection) as first:
        assert resources.persist() == 300  # new ants: at the next pass, all in one statement
    assert len(statements(first)) == 1
    assert AntRow.objects.filter(alive=True).count() == 300

    # the next heartbeats wait for the interval
    clock.now += 1
    for ant_id in ants:
        beat(resources, ant_id, clock, current_load=1 if ant_id == "ant-007" else 0)
    assert resources.persist() == 0
    assert AntRow.objects.get(ant_id="ant-007").current_load == 0
    clock.now += PERSIST_EVERY_SECS
    with CaptureQueriesContext(connection) as later:
        assert resources.persist() == 300
    upsert, update = statements(later)
    # the ant whose heartbeat says something new: only what changed is set (its load and time)
    assert '"ant-007"' not in upsert and "ON CONFLICT" in upsert
    assert "current_load" in upsert.split("DO UPDATE SET", 1)[1]
    assert "methods" not in upsert.split("DO UPDATE SET", 1)[1]
    # the others: their heartbeat time only, in one UPDATE
    assert update.startswith("UPDATE") and "last_heartbeat_at" in update and "current_load" not in update
    row = AntRow.objects.get(ant_id="ant-007")
    assert row.current_load == 1 and row.last_heartbeat_at.timestamp() == clock.now - PERSIST_EVERY_SECS
    assert (
        AntRow.objects.get(ant_id="ant-100").last_heartbeat_at.timestamp() == clock.now - PERSIST_EVERY_SECS
    )

    # an idle fleet: one statement a batch
    clock.now += PERSIST_EVERY_SECS
    for ant_id in ants:
        beat(resources, ant_id, clock, current_load=1 if ant_id == "ant-007" else 0)
    with CaptureQueriesContext(connection) as idle:
        assert resources.persist() == 300
    assert len(statements(idle)) == 1


def test_the_ant_with_the_most_room_is_chosen() -> None:
    clock = Clock()
    resources = ResourceManager(clock=clock)
    for ant_id, capacity in (("small", 1), ("big", 4), ("also-big", 4)):
        resources.heard(AntRegistration(ant_id=ant_id, methods=["SHELL"], max_capacity=capacity,
                                        created_at=clock.now))  # fmt: skip
    assert resources.choose("SHELL", []) == "big"
    resources.reserve("big", 1)
    assert resources.choose("SHELL", []) == "also-big"
    resources.reserve("also-big", 2)
    resources.reserve("also-big", 3)
    assert resources.choose("SHELL", []) == "big"
    assert resources.choose("DOCKER", []) is None


def test_a_registered_ant_is_dispatched_to_before_its_row_exists(alice) -> None:  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=ONE)
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="ant-r", methods=["SHELL"], max_capacity=2))
    assert not AntRow.objects.exists()  # placement reads the memory, never the rows
    engine = Engine(InProcessTransport(), resources)
    request_submit(org_id=alice.org_id, user=alice.user, job_type="rows-one", params={})
    assert engine.schedule() == 1  # its first task goes to the ant in the start itself
    assert (TaskExecution.objects.get().task_state, TaskExecution.objects.get().ant_id) == (
        "STARTED",
        "ant-r",
    )
    resources.persist()
    assert AntRow.objects.get(ant_id="ant-r").alive


def test_a_dead_ant_is_dropped_and_its_row_says_so(alice) -> None:  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=ONE)
    clock = Clock()
    resources = ResourceManager(ant_timeout_secs=15.0, clock=clock)
    beat(resources, "ant-dead", clock)
    beat(resources, "ant-leaving", clock)
    resources.persist()
    clock.now += 10
    beat(resources, "ant-leaving", clock, shutting_down=True)
    resources.persist()  # a goodbye is written at the next pass
    row = AntRow.objects.get(ant_id="ant-leaving")
    assert row.shutting_down and not row.alive
    assert resources.expire() == ["ant-leaving"]
    assert resources.choose("SHELL", []) == "ant-dead"
    clock.now += 10  # ant-dead silent for 20 s
    assert resources.choose("SHELL", []) is None
    assert resources.expire() == ["ant-dead"]
    assert resources.ants == {}
    assert not AntRow.objects.get(ant_id="ant-dead").alive
    # nothing is placed on it: the request waits and says why
    engine = Engine(InProcessTransport(), resources)
    request_submit(org_id=alice.org_id, user=alice.user, job_type="rows-one", params={})
    engine.schedule()
    assert engine.dispatch_ready() == 0
    assert not TaskExecution.objects.filter(ant_id="ant-dead").exists()
    # it comes back: written in full, alive again, at the next pass
    clock.now += 1
    beat(resources, "ant-dead", clock)
    resources.persist()
    assert AntRow.objects.get(ant_id="ant-dead").alive
