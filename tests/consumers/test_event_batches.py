"""Lifecycle events reach a request's page through the channel layer the settings configure:
one message per request and batch, sent on by the consumer as one frame per event, in order."""

import asyncio
import copy
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer

from jobs import fastsql
from jobs.domain import events
from jobs.routing import websocket_urlpatterns
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

# transaction=True: consumers reach the database from other threads, which must see committed rows
pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = """\
job_type: batch-job
tasks:
- task_type: build
  method: SHELL
  script: [echo hi]
"""


def test_events_emitted_together_reach_the_page_in_order_in_one_message(alice, monkeypatch):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    watched, other = (
        request_submit(org_id=alice.org_id, user=alice.user, job_type="batch-job") for _ in "ab"
    )
    org = alice.org_id
    emitted = [
        ("job_state", {"job_request_id": watched.pk, "job_state": "READY", "organization_id": org}),
        ("task_state", {"job_request_id": watched.pk, "task_execution_id": 7, "task_type": "build",
                        "task_state": "EXECUTING", "organization_id": org}),
        ("job_state", {"job_request_id": other.pk, "job_state": "READY", "organization_id": org}),
        ("task_state", {"job_request_id": watched.pk, "task_execution_id": 7, "task_type": "build",
                        "task_state": "COMPLETED", "exit_code": "0", "organization_id": org}),
        ("job_state", {"job_request_id": watched.pk, "job_state": "COMPLETED", "organization_id": org}),
    ]  # fmt: skip

    layer = get_channel_layer()
    sent: list[tuple[str, dict[str, Any]]] = []
    group_send = layer.group_send

    async def recording_group_send(group: str, message: dict[str, Any]) -> None:
        sent.append((group, copy.deepcopy(message)))
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recording_group_send)

    def emit_together() -> None:
        with events.together():  # the sender thread takes the queue only once all are in it
            for kind, payload in emitted:
                events.emit(kind, payload)
        assert events.flush()

    async def scenario() -> list[dict[str, Any]]:
        comm = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), f"/ws/jobs/requests/{watched.pk}/events"
        )
        comm.scope["user"] = alice.user
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["kind"] == "snapshot"
        await asyncio.get_running_loop().run_in_executor(None, emit_together)
        frames = [await comm.receive_json_from(timeout=5) for _ in range(4)]
        assert await comm.receive_nothing(timeout=0.3)  # nothing of the other request
        await comm.disconnect()
        return frames

    frames = async_to_sync(scenario)()
    # the frames the page got before batching: each event without its organization
    mine = [(kind, p) for kind, p in emitted if p["job_request_id"] == watched.pk]
    assert frames == [
        {"kind": kind, **{k: v for k, v in p.items() if k != "organization_id"}} for kind, p in mine
    ]
    to_page = (
        f"job-{watched.pk}",
        {"type": "job.events", "events": [{"kind": kind, **p} for kind, p in mine]},
    )
    to_nobody = (
        f"job-{other.pk}",
        {"type": "job.events", "events": [{"kind": "job_state", **emitted[2][1]}]},
    )
    if isinstance(layer, RedisChannelLayer) and fastsql.on("groups"):
        # nobody joined the other request's group: with Redis its send is skipped altogether
        # (a speed trick: with FORMICARY_FAST_SQL off every group is sent to)
        assert sent == [to_page]
    else:
        assert sent == [to_page, to_nobody]
