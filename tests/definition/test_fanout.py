"""Fan-out decisions (jobs.definition.fanout), pure: parsing, items, what starts, the outcome."""

import pytest

from jobs.definition.fanout import (
    FanOut,
    FanOutError,
    Instance,
    aggregate,
    item_text,
    items_of,
    outcome,
    to_cancel,
    to_restart,
    to_start,
)

REGIONS = FanOut(source="Regions", item_var="region", max_parallel=2)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"item_var": "r"}, "fan_out.source: required"),
        ({"source": "S", "item_var": "bad-name"}, "fan_out.item_var"),
        ({"source": "S", "item_var": "r", "max_parallel": -1}, "fan_out.max_parallel"),
        ({"source": "S", "item_var": "r", "max_parallel": True}, "fan_out.max_parallel"),
        ({"source": "S", "item_var": "r", "fail_fast": "yes"}, "fan_out.fail_fast"),
        ({"source": "S", "item_var": "r", "fork_job_version": "1.0"}, "needs fork_job_type"),
        ({"source": "S", "item_var": "r", "parallel": 2}, "fan_out.parallel: unknown"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_fan_out_names_the_field(raw, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FanOutError, match=needle):
        FanOut.parse(raw)


def test_parse_and_mode() -> None:
    job = FanOut.parse({"source": "S", "item_var": "r", "fork_job_type": " etl ", "max_parallel": 3})
    assert (job.mode, job.fork_job_type, job.max_parallel, job.fail_fast) == ("job", "etl", 3, False)
    assert FanOut.parse({"source": "S", "item_var": "r"}).mode == "task"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"Regions": '["us", "eu"]'}, ["us", "eu"]),
        ({"Regions": ["us", {"name": "eu"}]}, ["us", {"name": "eu"}]),
        ({"Regions": "[]"}, []),
    ],
)
def test_items_from_json_text_or_a_list(context, expected) -> None:  # type: ignore[no-untyped-def]
    assert items_of(context, "Regions") == expected


@pytest.mark.parametrize(
    ("context", "needle"),
    [
        ({}, "not in the job context"),
        ({"Regions": "us,eu"}, "not a JSON array"),
        ({"Regions": '{"a": 1}'}, "it is dict"),
        ({"Regions": 7}, "it is int"),
    ],  # fmt: skip
)
def test_bad_sources_are_named(context, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FanOutError, match=needle):
        items_of(context, "Regions")


def test_item_text() -> None:
    assert [item_text(x) for x in ("us", 3, True, {"a": [1]})] == ["us", "3", "true", '{"a":[1]}']


def _states(*states: str) -> list[Instance]:
    return [Instance(i, s) for i, s in enumerate(states)]


@pytest.mark.parametrize(
    ("fan_out", "states", "starts"),
    [
        (REGIONS, ("", "", "", ""), [0, 1]),  # at most two at once
        (REGIONS, ("EXECUTING", "", "", ""), [1]),
        (REGIONS, ("COMPLETED", "EXECUTING", "READY", ""), []),
        (REGIONS, ("COMPLETED", "FAILED", "EXECUTING", ""), [3]),  # a failure frees its slot
        (FanOut("S", "r"), ("", "", ""), [0, 1, 2]),  # 0: all at once
    ],
)
def test_what_starts_now(fan_out, states, starts) -> None:  # type: ignore[no-untyped-def]
    assert to_start(fan_out, _states(*states)) == starts
    assert to_start(fan_out, _states(*states), failed_fast=True) == []


def test_fail_fast_cancels_running_siblings() -> None:
    fast = FanOut("S", "r", max_parallel=2, fail_fast=True)
    instances = _states("FAILED", "EXECUTING", "READY", "")
    assert to_cancel(fast, instances) == [1, 2]
    assert to_cancel(REGIONS, instances) == []  # without fail_fast the others go on
    assert to_cancel(fast, _states("COMPLETED", "EXECUTING")) == []


@pytest.mark.parametrize(
    ("fan_out", "states", "allow", "state"),
    [
        (REGIONS, (), False, "COMPLETED"),  # an empty array completes at once
        (REGIONS, ("COMPLETED", "COMPLETED"), False, "COMPLETED"),
        (REGIONS, ("COMPLETED", "EXECUTING"), False, ""),
        (REGIONS, ("COMPLETED", ""), False, ""),
        (REGIONS, ("FAILED", "EXECUTING"), False, ""),  # the others still run
        (REGIONS, ("FAILED", "COMPLETED"), False, "FAILED"),
        (REGIONS, ("FAILED", "COMPLETED"), True, "COMPLETED"),  # failures allowed
        (FanOut("S", "r", fail_fast=True), ("FAILED", "CANCELLED", ""), False, "FAILED"),  # cut short
        (FanOut("S", "r", fail_fast=True), ("FAILED", "EXECUTING"), False, ""),  # a sibling still stops
    ],
)
def test_step_outcome(fan_out, states, allow, state) -> None:  # type: ignore[no-untyped-def]
    assert outcome(fan_out, _states(*states), allow_failure=allow).state == state


def test_a_failed_step_names_the_first_failed_item() -> None:
    got = outcome(
        REGIONS, [Instance(0, "COMPLETED"), Instance(1, "FAILED", "3", "", "exit 3"), Instance(2, "FAILED")]
    )
    assert got.error_code == "ERR_FAN_OUT_ITEM_FAILED"
    assert got.error_message == "2 of 3 fan-out items failed; item 1: exit 3"


def test_aggregation_keys_are_the_references() -> None:
    instances = [
        Instance(0, "COMPLETED", "0", context={"Endpoint": "us.example"}),
        Instance(1, "FAILED", "7", "ERR_X", "boom"),
        Instance(2, ""),  # never started (fail_fast): not reported
    ]
    assert aggregate(REGIONS, instances) == {
        "region_0_Endpoint": "us.example", "region_0_status": "COMPLETED", "region_0_exit_code": "0",
        "region_0_error_code": "", "region_0_error_message": "",
        "region_1_status": "FAILED", "region_1_exit_code": "7", "region_1_error_code": "ERR_X",
        "region_1_error_message": "boom",
        "FanOutItemCount": 3, "FanOutSource": "Regions", "FanOutMode": "task",
    }  # fmt: skip


def test_a_restart_runs_only_what_did_not_complete() -> None:
    assert to_restart(_states("COMPLETED", "FAILED", "CANCELLED", "", "SKIPPED")) == [1, 2, 3]


def test_fail_fast_names_the_item_that_failed_not_a_cancelled_sibling() -> None:
    fan = FanOut.parse({"source": "S", "item_var": "x", "fail_fast": True})
    got = outcome(
        fan, [Instance(0, "CANCELLED"), Instance(1, "FAILED", "3", "", "exit 3"), Instance(2, "CANCELLED")]
    )
    assert got.state == "FAILED"
    assert got.error_message == "1 of 3 fan-out items failed (2 cancelled); item 1: exit 3"
