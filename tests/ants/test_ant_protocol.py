"""Protocol messages: round trips, precise errors, and fuzzing (always ProtocolError)."""

from __future__ import annotations

import json
import random

import pytest

from ants.protocol import (
    PROTOCOL_VERSION,
    AntRegistration,
    LogLine,
    ProtocolError,
    TaskRequest,
    TaskResponse,
)

FULL_REQUEST = TaskRequest(
    action="EXECUTE",
    task_execution_id=11,
    attempt=2,
    job_request_id=7,
    job_execution_id=9,
    job_type="io.formicary.test",
    job_version="v3",
    task_type="build",
    method="SHELL",
    organization_id="org-1",
    user_id="user-1",
    ant_id="ant-1",
    tags=["linux", "fast"],
    timeout_secs=30.5,
    spec={"script": ["echo hi"], "environment": {"A": "1"}, "nested": {"x": [1, 2, None]}},
    variables={"Name": "value"},
    secret_names=["TOKEN"],
    created_at=1700000000.25,
)
FULL_RESPONSE = TaskResponse(
    task_execution_id=11,
    attempt=2,
    job_request_id=7,
    ant_id="ant-1",
    status="FAILED",
    exit_code="3",
    exit_message="boom",
    error_code="ERR_X",
    error_message="bad",
    failed_command="exit 3",
    task_context={"k": "v"},
    job_context={"j": 1},
    artifacts=[{"id": "a1", "name": "log.txt"}],
    warnings=["w"],
    stdout=["line 1", "line 2"],
    cost_factor=1.5,
    started_at=1.0,
    ended_at=2.0,
)
FULL_REGISTRATION = AntRegistration(
    ant_id="ant-1",
    ant_topic="formicary:ant:ant-1:tasks",
    max_capacity=4,
    tags=["a"],
    methods=["SHELL"],
    current_load=1,
    total_executed=10,
    allocations={"7": {"build": "EXECUTING"}},
    created_at=5.0,
    ant_started_at=1.0,
    encryption_key="",
    shutting_down=True,
)
FULL_LOG = LogLine(
    task_execution_id=11, attempt=2, job_request_id=7, seq=3, stream="stderr", line="oops", ts=4.0
)
ALL = [FULL_REQUEST, FULL_RESPONSE, FULL_REGISTRATION, FULL_LOG]


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    text = msg.to_json()
    data = json.loads(text)
    assert data["version"] == PROTOCOL_VERSION
    assert type(msg).from_json(text) == msg
    assert type(msg).from_json(text.encode()) == msg


def test_defaults_round_trip_and_minimal_messages() -> None:
    req = TaskRequest.from_json(
        json.dumps({"version": 1, "task_execution_id": 1, "job_request_id": 2, "task_type": "t"})
    )
    assert req.action == "EXECUTE" and req.attempt == 1 and req.spec == {} and req.timeout_secs is None
    resp = TaskResponse(task_execution_id=1, job_request_id=2, status="EXECUTING")
    assert TaskResponse.from_json(resp.to_json()) == resp


def test_snake_case_field_names() -> None:
    data = json.loads(FULL_RESPONSE.to_json())
    for name in (
        "exit_code",
        "exit_message",
        "error_code",
        "failed_command",
        "task_context",
        "job_context",
        "cost_factor",
    ):
        assert name in data


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = json.loads(FULL_LOG.to_json())
    data["added_in_v1_1"] = {"x": 1}
    assert LogLine.from_json(json.dumps(data)) == FULL_LOG


def _mutated(msg, **changes) -> str:
    data = json.loads(msg.to_json())
    for key, value in changes.items():
        if value is _DELETE:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


_DELETE = object()


@pytest.mark.parametrize(
    ("cls", "text", "field"),
    [
        (TaskRequest, "not json", "not valid JSON"),
        (TaskRequest, "[1, 2]", "expected a JSON object"),
        (TaskRequest, "null", "expected a JSON object"),
        (TaskRequest, _mutated(FULL_REQUEST, version=_DELETE), "TaskRequest.version"),
        (TaskRequest, _mutated(FULL_REQUEST, version=2), "TaskRequest.version"),
        (TaskRequest, _mutated(FULL_REQUEST, version="1"), "TaskRequest.version"),
        (TaskRequest, _mutated(FULL_REQUEST, version=True), "TaskRequest.version"),
        (TaskRequest, _mutated(FULL_REQUEST, task_execution_id=_DELETE), "TaskRequest.task_execution_id"),
        (TaskRequest, _mutated(FULL_REQUEST, task_execution_id="11"), "TaskRequest.task_execution_id"),
        (TaskRequest, _mutated(FULL_REQUEST, task_execution_id=1.5), "TaskRequest.task_execution_id"),
        (TaskRequest, _mutated(FULL_REQUEST, attempt=True), "TaskRequest.attempt"),
        (TaskRequest, _mutated(FULL_REQUEST, action="EXPLODE"), "TaskRequest.action"),
        (TaskRequest, _mutated(FULL_REQUEST, tags=["a", 1]), "TaskRequest.tags[1]"),
        (TaskRequest, _mutated(FULL_REQUEST, tags="a"), "TaskRequest.tags"),
        (TaskRequest, _mutated(FULL_REQUEST, timeout_secs="10"), "TaskRequest.timeout_secs"),
        (TaskRequest, _mutated(FULL_REQUEST, spec=[]), "TaskRequest.spec"),
        (TaskRequest, _mutated(FULL_REQUEST, variables={"a": 1}), "TaskRequest.variables.a"),
        (TaskRequest, _mutated(FULL_REQUEST, task_type=None), "TaskRequest.task_type"),
        (TaskResponse, _mutated(FULL_RESPONSE, status="DONE"), "TaskResponse.status"),
        (TaskResponse, _mutated(FULL_RESPONSE, exit_code=3), "TaskResponse.exit_code"),
        (TaskResponse, _mutated(FULL_RESPONSE, artifacts=["x"]), "TaskResponse.artifacts[0]"),
        (TaskResponse, _mutated(FULL_RESPONSE, cost_factor="1"), "TaskResponse.cost_factor"),
        (
            AntRegistration,
            _mutated(FULL_REGISTRATION, allocations={"7": {"b": 1}}),
            "AntRegistration.allocations.7.b",
        ),
        (AntRegistration, _mutated(FULL_REGISTRATION, shutting_down="yes"), "AntRegistration.shutting_down"),
        (AntRegistration, _mutated(FULL_REGISTRATION, ant_id=_DELETE), "AntRegistration.ant_id"),
        (LogLine, _mutated(FULL_LOG, stream="stdin"), "LogLine.stream"),
        (LogLine, _mutated(FULL_LOG, seq=_DELETE), "LogLine.seq"),
        (LogLine, FULL_LOG.to_json().replace('"ts":4.0', '"ts":NaN'), "not valid JSON"),
        (LogLine, FULL_LOG.to_json().replace('"ts":4.0', '"ts":1e999'), "LogLine.ts"),
    ],
)
def test_malformed_input_names_the_field(cls, text, field) -> None:
    with pytest.raises(ProtocolError) as exc:
        cls.from_json(text)
    assert field in str(exc.value)


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        TaskRequest.from_json(b"\xff\xfe{}")


def test_non_finite_number_cannot_be_encoded() -> None:
    with pytest.raises(ProtocolError):
        LogLine(task_execution_id=1, job_request_id=1, seq=1, line="x", ts=float("nan")).to_json()


@pytest.mark.parametrize("cls", [TaskRequest, TaskResponse, AntRegistration, LogLine])
def test_fuzz_random_bytes_always_protocol_error(cls) -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        with pytest.raises(ProtocolError):
            cls.from_json(blob)


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_fuzz_mutated_json_is_valid_or_protocol_error(msg) -> None:
    """Byte-level and value-level mutations of a valid message never raise anything else."""
    rng = random.Random(99)
    text = msg.to_json()
    cls = type(msg)
    samples = [None, True, 0, -1, 1.5, "", "x", [], {}, [1], {"a": None}, 10**30]
    keys = list(json.loads(text))
    for _ in range(3000):
        if rng.random() < 0.5:
            chars = list(text)
            for _ in range(rng.randrange(1, 4)):
                pos = rng.randrange(len(chars))
                op = rng.randrange(3)
                if op == 0:
                    del chars[pos]
                elif op == 1:
                    chars[pos] = chr(rng.randrange(32, 127))
                else:
                    chars.insert(pos, rng.choice('{}[]",:0'))
            candidate = "".join(chars)
        else:
            data = json.loads(text)
            data[rng.choice(keys)] = rng.choice(samples)
            candidate = json.dumps(data)
        try:
            result = cls.from_json(candidate)
        except ProtocolError:
            continue
        assert isinstance(result, cls)
        # Whatever decoded must encode again.
        cls.from_json(result.to_json())


def test_an_executors_result_is_the_body_of_the_response() -> None:
    from ants.executors.base import ExecutionResult
    from ants.protocol import TaskOutcome

    assert ExecutionResult is TaskOutcome  # declared once: the response carries it field by field
    result = ExecutionResult(status="FAILED", exit_code="3", warnings=["w"], job_context={"j": 1})
    resp = TaskResponse(task_execution_id=1, job_request_id=2, **result.outcome())
    assert TaskResponse.from_json(resp.to_json()).outcome() == result.outcome()
