"""Hypothesis over websocket messages: the WEBSOCKET ants' consumer (``ws/ants``) and the
browsers' live-event consumer answer any frame (text, bytes, JSON of any shape, before and after
registering) with a message or silence, never an internal error or a dropped socket, and never
a secret value (issue 14, "Fuzzing in CI")."""

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import assert_no_secret

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fuzz]

KEYS = ["type", "ant_id", "tags", "methods", "max_capacity", "concurrency", "status", "task_execution_id",
        "attempt", "exit_code", "lines", "task_context", "job_context", "error_message", "artifacts"]  # fmt: skip
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
values = st.recursive(
    scalars | st.sampled_from(["register", "log", "ping", "COMPLETED", "FAILED", "WEBSOCKET", "fuzz-ant"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)  # fmt: skip
messages = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
registration = st.fixed_dictionaries(
    {"ant_id": st.just("fuzz-ant"), "tags": st.lists(st.sampled_from(["a", "b"]), max_size=2)},
    optional={"methods": st.just(["WEBSOCKET"]), "max_capacity": st.integers(1, 4)},
)
frames = st.one_of(
    messages.map(lambda m: ("text", json.dumps(m))),
    values.map(lambda v: ("text", json.dumps(v))),
    st.text(min_size=1, max_size=60).map(lambda t: ("text", t)),
    st.binary(min_size=1, max_size=60).map(lambda b: ("bytes", b)),
    st.just(("text", "[" * 3000 + "]" * 3000)),
)


@pytest.fixture(autouse=True)
def transport(settings, in_process_transport):  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def exchange(comm: WebsocketCommunicator, sequence: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    connected, code = await comm.connect(timeout=10)
    assert connected, f"refused with {code}"
    replies: list[dict[str, Any]] = []
    try:
        for kind, data in sequence:
            if kind == "text":
                await comm.send_to(text_data=data)
            else:
                await comm.send_to(bytes_data=data)
            # a reply, or nothing: either way the socket must still be open
            while not await comm.receive_nothing(timeout=0.05):
                output = await comm.receive_output(timeout=1)
                assert output["type"] == "websocket.send", f"socket closed: {output}"
                assert_no_secret(output.get("text") or "", "websocket answer")
                replies.append(json.loads(output["text"]))
    finally:
        await comm.disconnect()
        await asyncio.sleep(0)
    return replies


@given(first=st.one_of(registration.map(lambda r: ("text", json.dumps(r))), frames),
       rest=st.lists(frames, max_size=4))  # fmt: skip
@settings(settings.get_profile("formicary-fuzz"))
def test_ant_consumer_answers_every_frame(fuzz_world, first, rest):  # type: ignore[no-untyped-def]
    from ants.web.routing import websocket_urlpatterns

    comm = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), "/ws/ants",
        headers=[(b"authorization", f"Bearer {fuzz_world.bob.token}".encode())],
    )  # fmt: skip
    replies = async_to_sync(exchange)(comm, [first, *rest])
    for reply in replies:
        assert reply.get("type") in ("registered", "error", "ack", "pong", "task", "cancel"), reply
        assert "internal error" not in str(reply.get("error", "")), reply


@given(sequence=st.lists(frames, min_size=1, max_size=4))
@settings(settings.get_profile("formicary-fuzz"))
def test_request_events_consumer_ignores_what_browsers_send(fuzz_world, sequence):  # type: ignore[no-untyped-def]
    from jobs.routing import websocket_urlpatterns

    comm = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/jobs/requests/{fuzz_world.ids['request']}/events"
    )
    comm.scope["user"] = fuzz_world.alice.user
    replies = async_to_sync(exchange)(comm, sequence)
    assert [r.get("kind") for r in replies][:1] == ["snapshot"]
    assert all(r.get("kind") != "snapshot" for r in replies[1:])
