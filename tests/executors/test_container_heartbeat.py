"""The container list every heartbeat carries: compact, bounded, never blocking a heartbeat."""

from __future__ import annotations

import json
import threading
import time

from ants.containers import MAX_HEARTBEAT_CONTAINERS, HeartbeatContainers, compact_container
from ants.protocol import AntRegistration


def test_a_slow_listing_never_holds_up_the_heartbeat() -> None:
    release = threading.Event()
    calls = []

    def slow() -> list[dict]:
        calls.append(1)
        release.wait(60)  # a heartbeat that waited for this listing would return its list, not []
        return [{"id": "c1", "method": "DOCKER", "status": "Up 2 seconds", "organization_id": "3"}]

    listing = HeartbeatContainers(slow, wait_secs=0.1)
    assert listing() == []  # nothing known yet: the previous (empty) list
    assert listing() == []  # the running listing is not started twice
    assert len(calls) == 1
    release.set()
    deadline = time.monotonic() + 5
    while (got := listing()) == [] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got == [{"id": "c1", "method": "DOCKER", "organization_id": "3"}]  # compact: no status


def test_failures_keep_the_last_list_and_the_list_is_bounded() -> None:
    state = {"fail": False}

    def lister() -> list[dict]:
        if state["fail"]:
            raise RuntimeError("engine gone")
        return [{"id": f"c{i}", "state": "RUNNING"} for i in range(MAX_HEARTBEAT_CONTAINERS + 50)]

    listing = HeartbeatContainers(lister, wait_secs=2)
    assert len(listing()) == MAX_HEARTBEAT_CONTAINERS
    state["fail"] = True
    assert len(listing()) == MAX_HEARTBEAT_CONTAINERS


def test_registration_field_is_optional_and_round_trips() -> None:
    fields = json.loads(AntRegistration(ant_id="a1").to_json())
    del fields["containers"]  # a heartbeat from an ant that predates the field
    old = json.dumps(fields)
    assert AntRegistration.from_json(old).containers == []
    reg = AntRegistration(
        ant_id="a1", containers=[compact_container({"id": "x", "image": "", "state": "RUNNING"})]
    )
    assert AntRegistration.from_json(reg.to_json()).containers == [{"id": "x", "state": "RUNNING"}]
