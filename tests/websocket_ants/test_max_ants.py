"""The plan's max_ants refuses another WEBSOCKET ant of the organization, naming the limit."""

import json

import pytest
from asgiref.sync import async_to_sync

from orgs import services
from orgs.models import Subscription
from tests.websocket_ants.test_consumer import communicator, transport  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_ant_over_the_plans_max_ants_is_refused(alice, bob):  # type: ignore[no-untyped-def]
    services.subscription_save(Subscription(organization_id=alice.org_id), {"policy": "BASIC", "max_ants": 1})

    async def register(token: str, ant_id: str):  # type: ignore[no-untyped-def]
        comm = communicator(f"/ws/ants?token={token}")
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"ant_id": ant_id}))
        return comm, json.loads(await comm.receive_from(timeout=5))

    async def go() -> None:
        first, answer = await register(alice.token, "one")
        assert answer["type"] == "registered"
        second, answer = await register(alice.token, "two")
        assert answer == {
            "type": "error",
            "error": "ant limit reached: 1 ants registered, the BASIC plan's max_ants is 1",
        }
        other, answer = await register(bob.token, "two")  # another organization: its own plan (none)
        assert answer["type"] == "registered"
        for comm in (first, second, other):
            await comm.disconnect()

    async_to_sync(go)()
