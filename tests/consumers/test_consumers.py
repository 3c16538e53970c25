"""Websocket consumers: a request's events and a task's log lines, only for its organization."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from ants.messaging import InProcessTransport
from ants.protocol import LogLine
from jobs.consumers import CLOSE_FORBIDDEN
from jobs.models import JobExecution, JobRequest, TaskExecution, TaskLogChunk
from jobs.routing import websocket_urlpatterns
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from jobs.states import JobState, TaskState

# transaction=True: consumers reach the database from other threads, which must see committed rows
pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = """\
job_type: ws-job
tasks:
- task_type: build
  method: SHELL
  script: [echo hi]
  on_completed: test
- task_type: test
  method: SHELL
  script: [echo ok]
"""


@pytest.fixture(autouse=True)
def in_memory_layer(settings):  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def transport(in_process_transport: InProcessTransport) -> InProcessTransport:
    return in_process_transport


@pytest.fixture
def running(alice) -> TaskExecution:  # type: ignore[no-untyped-def]
    """An acme request whose first task is executing."""
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="ws-job")
    execution = JobExecution.objects.create(
        organization_id=alice.org_id, job_request=request, job_state=JobState.EXECUTING
    )
    JobRequest.objects.filter(pk=request.pk).update(job_state=JobState.EXECUTING, last_execution=execution)
    return TaskExecution.objects.create(
        organization_id=alice.org_id, job_execution=execution, task_type="build", method="SHELL",
        task_state=TaskState.EXECUTING, attempt=1,
    )  # fmt: skip


def communicator(user: Any, path: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    comm.scope["user"] = user
    return comm


def run(coro_fn: Any) -> Any:
    return async_to_sync(coro_fn)()


def events_path(task: TaskExecution) -> str:
    return f"/ws/jobs/requests/{task.job_execution.job_request_id}/events"


def test_owner_gets_snapshot_then_events(alice, running):  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        comm = communicator(alice.user, events_path(running))
        connected, _ = await comm.connect()
        assert connected
        snapshot = await comm.receive_json_from(timeout=5)
        assert snapshot["kind"] == "snapshot" and snapshot["job_state"] == "EXECUTING"
        assert snapshot["tasks"] == [
            {
                "task_execution_id": running.pk,
                "task_type": "build",
                "task_state": "EXECUTING",
                "exit_code": "",
            }
        ]
        request_id = running.job_execution.job_request_id
        await get_channel_layer().group_send(
            f"job-{request_id}",
            {"type": "job.event", "kind": "task_state", "job_request_id": request_id,
             "task_execution_id": running.pk, "task_state": "COMPLETED", "organization_id": alice.org_id},
        )  # fmt: skip
        event = await comm.receive_json_from(timeout=5)
        assert event == {"kind": "task_state", "job_request_id": request_id, "task_execution_id": running.pk,
                         "task_state": "COMPLETED"}  # fmt: skip
        await comm.disconnect()

    run(scenario)


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_other_organization_cannot_subscribe_to_events(who, bob, running):  # type: ignore[no-untyped-def]
    user = bob.user if who == "bob" else AnonymousUser()

    async def scenario() -> None:
        comm = communicator(user, events_path(running))
        connected, code = await comm.connect()
        assert not connected and code == CLOSE_FORBIDDEN
        # and nothing sent to the request's group reaches it
        await get_channel_layer().group_send(
            f"job-{running.job_execution.job_request_id}", {"type": "job.event", "kind": "job_state"}
        )
        assert await comm.receive_nothing(timeout=0.2)

    run(scenario)


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_other_organization_cannot_tail_logs(who, bob, running, transport):  # type: ignore[no-untyped-def]
    user = bob.user if who == "bob" else AnonymousUser()
    transport.publish_logs([_line(running, 1, "acme secret output")])

    async def scenario() -> None:
        comm = communicator(user, f"/ws/jobs/tasks/{running.pk}/logs")
        connected, code = await comm.connect()
        assert not connected and code == CLOSE_FORBIDDEN
        assert await comm.receive_nothing(timeout=0.2)

    run(scenario)


def test_unknown_ids_are_refused_the_same_way(alice, running):  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        for path in ("/ws/jobs/requests/999999/events", "/ws/jobs/tasks/999999/logs"):
            connected, code = await communicator(alice.user, path).connect()
            assert not connected and code == CLOSE_FORBIDDEN

    run(scenario)


def _line(task: TaskExecution, seq: int, text: str) -> LogLine:
    return LogLine(task_execution_id=task.pk, job_request_id=task.job_execution.job_request_id, seq=seq,
                   line=text, attempt=1)  # fmt: skip


def test_log_tail_sends_earlier_lines_then_live_ones_then_end(alice, running, transport):  # type: ignore[no-untyped-def]
    transport.publish_logs([_line(running, 1, "first"), _line(running, 2, "second")])

    async def scenario() -> None:
        comm = communicator(alice.user, f"/ws/jobs/tasks/{running.pk}/logs")
        connected, _ = await comm.connect()
        assert connected
        earlier = await comm.receive_json_from(timeout=5)
        assert [x["line"] for x in earlier["lines"]] == ["first", "second"]
        await asyncio.get_running_loop().run_in_executor(
            None, transport.publish_logs, [_line(running, 3, "live")]
        )
        live = await comm.receive_json_from(timeout=5)
        assert [(x["seq"], x["line"]) for x in live["lines"]] == [(3, "live")]
        await database_sync_to_async(
            lambda: TaskExecution.objects.filter(pk=running.pk).update(task_state=TaskState.COMPLETED)
        )()
        assert (await comm.receive_json_from(timeout=5)) == {"kind": "end"}
        await comm.disconnect()

    run(scenario)


def test_finished_task_without_live_stream_is_served_from_stored_chunks(alice, running, transport):  # type: ignore[no-untyped-def]
    TaskExecution.objects.filter(pk=running.pk).update(task_state=TaskState.COMPLETED)
    TaskLogChunk.objects.create(organization_id=alice.org_id, task_execution=running, attempt=1, first_seq=1,
                                last_seq=2, text="stored one\nstored two")  # fmt: skip

    async def scenario() -> None:
        comm = communicator(alice.user, f"/ws/jobs/tasks/{running.pk}/logs")
        assert (await comm.connect())[0]
        stored = await comm.receive_json_from(timeout=5)
        assert [x["line"] for x in stored["lines"]] == ["stored one", "stored two"]
        assert (await comm.receive_json_from(timeout=5)) == {"kind": "end"}
        await comm.disconnect()

    run(scenario)


def test_session_login_through_the_real_websocket_stack(alice, bob, running):  # type: ignore[no-untyped-def]
    from formicary_site.asgi import application

    def cookie_of(user: Any) -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    async def connect_as(cookie: bytes) -> tuple[bool, Any]:
        comm = WebsocketCommunicator(
            application,
            events_path(running),
            # a browser's handshake names the Host; ws_origin.py compares the Origin with it
            headers=[(b"cookie", cookie), (b"origin", b"http://testserver"), (b"host", b"testserver")],
        )
        result = await comm.connect()
        if result[0]:
            await comm.disconnect()
        return result

    alice_cookie, bob_cookie = cookie_of(alice.user), cookie_of(bob.user)
    assert async_to_sync(connect_as)(alice_cookie)[0]
    assert async_to_sync(connect_as)(bob_cookie) == (False, CLOSE_FORBIDDEN)


def test_stored_lines_keep_their_stream(alice, running, transport):  # type: ignore[no-untyped-def]
    """The queen stores each line's stream with it: a finished log served from storage styles
    stderr and the echoed commands as the live one did (chunks from before keep all stdout)."""
    from ants.messaging.base import Delivery
    from jobs.domain.logs import store_lines

    sent = [("system", "$ make"), ("stdout", "building"), ("stderr", "warning: a\ntwo-line warning"),
            ("stdout", "done")]  # fmt: skip
    store_lines([Delivery(f"0-{i}", LogLine(task_execution_id=running.pk, job_request_id=1, attempt=1,
                                            seq=i + 1, stream=stream, line=line))
                 for i, (stream, line) in enumerate(sent)])  # fmt: skip
    TaskLogChunk.objects.create(organization_id=alice.org_id, task_execution=running, attempt=1, first_seq=9,
                                last_seq=9, text="older row")  # fmt: skip
    TaskExecution.objects.filter(pk=running.pk).update(task_state=TaskState.COMPLETED)

    async def scenario() -> None:
        comm = communicator(alice.user, f"/ws/jobs/tasks/{running.pk}/logs")
        assert (await comm.connect())[0]
        stored = await comm.receive_json_from(timeout=5)
        assert [(x["stream"], x["line"]) for x in stored["lines"]] == [
            ("system", "$ make"), ("stdout", "building"), ("stderr", "warning: a"), ("stderr", "two-line warning"),
            ("stdout", "done"), ("stdout", "older row"),
        ]  # fmt: skip
        await comm.disconnect()

    run(scenario)


def test_events_go_in_memory_only_to_groups_a_page_joined() -> None:
    """Standalone's layer: a group_send sweeps every channel and group first, so events for a
    request no page watches are not sent at all."""
    from jobs.domain import events

    layer = get_channel_layer()

    async def scenario() -> None:
        await layer.group_add("job-1", "page-one")
        assert await events.watched_groups(layer, ["job-1", "job-2"]) == {"job-1"}
        await layer.group_discard("job-1", "page-one")
        assert await events.watched_groups(layer, ["job-1", "job-2"]) == set()

    run(scenario)


def test_a_group_send_from_another_thread_runs_on_the_pages_loop() -> None:
    """Standalone's layer: the queen's thread sends while the web server's loop adds and drops
    pages. The layer's dicts are walked and changed only on that loop (a walk from another
    thread can meet a dict changing size, and the event is lost), and every event arrives."""
    import threading

    from formicary_site.channel_layers import ThreadSafeInMemoryChannelLayer

    layer = ThreadSafeInMemoryChannelLayer()
    walked_on: set[int] = set()
    sweep = layer._clean_expired

    def recording_sweep() -> None:
        walked_on.add(threading.get_ident())
        sweep()

    layer._clean_expired = recording_sweep  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()
    received: list[Any] = []

    async def page() -> None:
        await layer.group_add("job-1", "page-one")
        for _ in range(50):
            received.append(await layer.receive("page-one"))

    async def churn() -> None:  # other pages come and go meanwhile
        for n in range(2000):
            await layer.group_add(f"job-{n + 2}", f"other-{n}")
            await layer.group_discard(f"job-{n + 2}", f"other-{n}")
            await asyncio.sleep(0)

    watching = asyncio.run_coroutine_threadsafe(page(), loop)
    churning = asyncio.run_coroutine_threadsafe(churn(), loop)

    async def queen() -> None:
        while layer._receiver_loop is None:
            await asyncio.sleep(0.001)
        for n in range(50):
            await layer.group_send("job-1", {"type": "job.events", "n": n})

    try:
        asyncio.run(queen())
        watching.result(timeout=10)
        churning.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        server.join(timeout=5)
    assert [m["n"] for m in received] == list(range(50))
    assert walked_on == {server.ident}


def test_the_writer_stores_lines_of_known_tasks_under_their_organization(alice, running):  # type: ignore[no-untyped-def]
    """Through its look-up of the tasks' organizations (compiled once per shape): the lines of a
    task that does not exist are dropped."""
    from ants.messaging.base import Delivery
    from jobs.domain import logs

    lines = [(running.pk, "one"), (running.pk + 10_000, "stray"), (running.pk, "two")]
    logs.store_lines([Delivery(f"0-{i}", LogLine(task_execution_id=task_id, job_request_id=1, attempt=1,
                                                 seq=i + 1, stream="stdout", line=line))
                      for i, (task_id, line) in enumerate(lines)])  # fmt: skip
    stored = list(TaskLogChunk.objects.values_list("organization_id", "task_execution_id", "text"))
    assert stored == [(alice.org_id, running.pk, "one\ntwo")]
