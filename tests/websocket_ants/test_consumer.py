"""The ``ws/ants`` consumer without a server: authentication, registration and message checks."""

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from ants.executors.base import ExecutionContext
from ants.executors.websocket import ERR_WRONG_ORGANIZATION, WebsocketExecutor
from ants.protocol import TaskRequest
from ants.web.consumers import CLOSE_UNAUTHENTICATED, _connected
from ants.web.routing import websocket_urlpatterns
from orgs.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def transport(settings, in_process_transport):  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return in_process_transport


def communicator(
    path: str = "/ws/ants", user: Any = None, headers: list | None = None
) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path, headers=headers or [])
    comm.scope["user"] = user if user is not None else AnonymousUser()
    return comm


def connects(comm: WebsocketCommunicator) -> bool:
    async def go() -> bool:
        connected, code = await comm.connect()
        if connected:
            await comm.disconnect()
        else:
            assert code == CLOSE_UNAUTHENTICATED
        return connected

    return async_to_sync(go)()


def test_refused_without_credentials():
    assert not connects(communicator())


def test_refused_with_an_unknown_token(alice):
    assert not connects(communicator("/ws/ants?token=fmc_nope"))
    assert not connects(communicator(headers=[(b"authorization", b"Bearer fmc_nope")]))
    assert not connects(communicator(headers=[(b"authorization", b"Basic abc")]))


def test_refused_with_an_expired_token_or_inactive_user(alice):
    ApiToken.objects.filter(user=alice.user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not connects(communicator(f"/ws/ants?token={alice.token}"))
    ApiToken.objects.filter(user=alice.user).update(expires_at=None)
    alice.user.is_active = False
    alice.user.save()
    assert not connects(communicator(f"/ws/ants?token={alice.token}"))


def test_a_bad_header_token_does_not_fall_back_to_the_session(alice):
    assert not connects(communicator(user=alice.user, headers=[(b"authorization", b"Bearer fmc_nope")]))


def test_accepted_with_a_token_or_a_session(alice):
    assert connects(communicator(f"/ws/ants?token={alice.token}"))
    assert connects(communicator(headers=[(b"authorization", f"Bearer {alice.token}".encode())]))
    assert connects(communicator(user=alice.user))


def test_bad_messages_get_an_error_and_the_socket_stays_open(alice):
    async def go() -> list[str]:
        comm = communicator(f"/ws/ants?token={alice.token}")
        assert (await comm.connect())[0]
        errors = []

        async def ask(text: str | None = None, data: bytes | None = None) -> dict:
            if data is not None:
                await comm.send_to(bytes_data=data)
            else:
                await comm.send_to(text_data=text)
            return json.loads(await comm.receive_from(timeout=5))

        for text in ["not json", "[1, 2]", '{"ant_id": "bad id!"}', '{"type": "hello"}',
                     '{"ant_id": "x", "methods": ["SHELL"]}', '{"ant_id": "x", "tags": "web"}',
                     '{"ant_id": "x", "max_capacity": 0}']:  # fmt: skip
            reply = await ask(text)
            assert reply["type"] == "error", reply
            errors.append(reply["error"])
        reply = await ask(data=b"\xff\xfe")
        errors.append(reply["error"])
        reply = await ask(json.dumps({"ant_id": "ok", "tags": ["web"], "methods": ["websocket"]}))
        assert reply["type"] == "registered" and reply["ant_id"] == f"ws-{alice.org_id}-ok", reply
        assert reply["organization_id"] == str(alice.org_id)
        for text in ['{"status": "DONE", "task_execution_id": 1}', '{"status": "COMPLETED"}',
                     '{"status": "COMPLETED", "task_execution_id": 999}',
                     '{"status": "COMPLETED", "task_execution_id": 1, "task_context": []}',
                     '{"type": "log", "task_execution_id": 1, "lines": "x"}',
                     '{"type": "surprise"}', '{"ant_id": "again", "methods": ["WEBSOCKET"]}']:  # fmt: skip
            reply = await ask(text)
            assert reply["type"] == "error", reply
            errors.append(reply["error"])
        assert await ask('{"type": "ping"}') == {"type": "pong"}
        await comm.disconnect()
        return errors

    errors = async_to_sync(go)()
    expected = ["not valid JSON", "JSON object", "ant_id", "registration first", "methods", "tags",
                "max_capacity", "UTF-8", "status", "task_execution_id", "no running task 999",
                "task_context", "lines", "unknown message", "already registered"]  # fmt: skip
    for error, word in zip(errors, expected, strict=True):
        assert word in error, (word, error)
    assert f"ws-{alice.org_id}-ok" not in _connected


def test_registration_carries_the_organization(alice, transport):
    async def go() -> None:
        comm = communicator(f"/ws/ants?token={alice.token}")
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"ant_id": "reg", "tags": ["web", "js"], "max_capacity": 3}))
        assert json.loads(await comm.receive_from(timeout=5))["type"] == "registered"
        for _ in range(100):
            regs = transport.ant_registrations()
            if f"ws-{alice.org_id}-reg" in regs:
                break
            await __import__("asyncio").sleep(0.02)
        reg = regs[f"ws-{alice.org_id}-reg"]
        assert (reg.organization_id, reg.methods, reg.tags, reg.max_capacity) == (
            str(alice.org_id), ["WEBSOCKET"], ["web", "js"], 3)  # fmt: skip
        await comm.disconnect()

    async_to_sync(go)()
    final = transport.ant_registrations(include_shutting_down=True)[f"ws-{alice.org_id}-reg"]
    assert final.shutting_down


def test_executor_refuses_another_organizations_task(tmp_path):
    sent: list[dict] = []
    executor = WebsocketExecutor(send=sent.append, organization_id="1")
    req = TaskRequest(
        task_execution_id=5, job_request_id=1, task_type="t", method="WEBSOCKET", organization_id="2"
    )
    result = executor.execute(req, ExecutionContext(workdir=tmp_path))
    assert result.status == "FAILED" and result.error_code == ERR_WRONG_ORGANIZATION
    assert sent == []


def test_executor_timeout_and_cancel(tmp_path):
    import threading
    import time

    sent: list[dict] = []
    executor = WebsocketExecutor(send=sent.append, organization_id="1")
    req = TaskRequest(task_execution_id=5, job_request_id=1, task_type="t", method="WEBSOCKET", organization_id="1",
                      timeout_secs=0.3)  # fmt: skip
    result = executor.execute(req, ExecutionContext(workdir=tmp_path, deadline=time.monotonic() + 0.3))
    assert (result.status, result.error_code) == ("FAILED", "ERR_TASK_TIMEOUT")
    assert [m["type"] for m in sent] == ["task", "cancel"] and sent[1]["reason"] == "timeout"

    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result = executor.execute(req, ExecutionContext(workdir=tmp_path, cancel_event=cancel))
    assert result.status == "CANCELLED" and sent[-1]["reason"] == "cancelled"


def test_executor_without_a_socket_says_where_tasks_run(tmp_path):
    from ants.executors import executor_for

    result = executor_for("WEBSOCKET").execute(
        TaskRequest(task_execution_id=5, job_request_id=1, task_type="t", method="WEBSOCKET"),
        ExecutionContext(workdir=tmp_path),
    )
    assert result.status == "FAILED" and "websocket ants" in result.error_message
