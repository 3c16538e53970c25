"""Encrypted queen <-> ant messages on a real Redis: what is written is sealed per ant, and an
entry that was tampered with, sealed for another ant or with another key, or written in clear
while encryption is on, is dropped with a warning that never shows its content."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.messaging.redis_streams import ANT_FIELD, FIELD, SEALED_FIELD, RedisStreamsTransport
from ants.messaging.sealing import MessageSealer, export_ant_key
from ants.protocol import AntRegistration, LogLine, TaskRequest, TaskResponse
from ants.worker import AntWorker

ROOT = Path(__file__).resolve().parents[2]
SECRET = secrets.token_urlsafe(32)
MARK = "distinct-payload-7Qx"


@pytest.fixture
def make(redis_url: str | None) -> Iterator:  # type: ignore[type-arg]
    if redis_url is None:
        pytest.skip("no redis-server binary and no REDIS_URL")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    made: list[RedisStreamsTransport] = []

    def _make(key: str = SECRET) -> RedisStreamsTransport:
        sealer = MessageSealer.from_setting(key) if key else None
        t = RedisStreamsTransport(redis_url, prefix=prefix, sealer=sealer)
        made.append(t)
        return t

    yield _make
    keys = list(made[0].redis.scan_iter(match=f"{prefix}:*", count=1000)) if made else []
    if keys:
        made[0].redis.delete(*keys)
    for t in made:
        t.close()


def request(ant_id: str = "ant-1") -> TaskRequest:
    return TaskRequest(task_execution_id=7, job_request_id=3, job_type="j", task_type="t", ant_id=ant_id,
                       variables={"Token": MARK})  # fmt: skip


def entries(t: RedisStreamsTransport, key: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in t.redis.xrange(key)]


def test_requests_responses_and_logs_are_sealed_on_the_wire_and_open_at_the_other_end(make) -> None:
    queen, ant = make(), make()
    queen.send_task("ant-1", request())
    (raw,) = entries(queen, queen.key_tasks("ant-1"))
    assert set(raw) == {SEALED_FIELD, ANT_FIELD} and MARK.encode() not in raw[SEALED_FIELD]
    (got,) = ant.read_tasks("ant-1", "c", 0, 10)
    assert got.message.variables["Token"] == MARK

    resp = TaskResponse(task_execution_id=7, job_request_id=3, status="COMPLETED", ant_id="ant-1",
                        task_context={"Out": MARK})  # fmt: skip
    line = LogLine(task_execution_id=7, job_request_id=3, seq=1, line=f"echo {MARK}", ant_id="ant-1")
    ant.send_batch([line], [resp], ack=("ant-1", got.id))
    for key in (queen.key_responses, queen.key_logs(7), queen.key_all_logs):
        assert all(MARK.encode() not in b"".join(f) for f in entries(queen, key))
    (answer,) = queen.read_responses("q", 0, 10)
    assert answer.message.task_context == {"Out": MARK}
    assert queen.read_logs(7, "0", 0)[0][1].line == f"echo {MARK}"


def test_a_tampered_request_is_dropped_with_a_warning_without_its_content(make, caplog) -> None:
    queen, ant = make(), make()
    queen.send_task("ant-1", request())
    key = queen.key_tasks("ant-1")
    ((entry_id, fields),) = queen.redis.xrange(key)
    sealed = bytearray(fields[SEALED_FIELD])
    sealed[20] ^= 1
    queen.redis.xdel(key, entry_id)
    queen.redis.xadd(key, {SEALED_FIELD: bytes(sealed), ANT_FIELD: b"ant-1"})
    with caplog.at_level(logging.WARNING):
        assert ant.read_tasks("ant-1", "c", 0, 10) == []
    assert "authentication failed" in caplog.text and MARK not in caplog.text
    assert queen.redis.xlen(key) == 0  # acked and deleted: nobody reads it again
    queen.send_task("ant-1", request())  # the ant goes on with the next one
    assert len(ant.read_tasks("ant-1", "c", 0, 10)) == 1


def test_a_response_claiming_another_ant_or_sealed_with_another_key_is_dropped(make, caplog) -> None:
    queen, other = make(), make(secrets.token_urlsafe(32))
    ok = TaskResponse(task_execution_id=1, job_request_id=1, status="COMPLETED", ant_id="ant-1")
    queen.send_response(ok)
    ((entry_id, fields),) = queen.redis.xrange(queen.key_responses)
    queen.redis.xadd(queen.key_responses, {SEALED_FIELD: fields[SEALED_FIELD], ANT_FIELD: b"ant-2"})
    other.send_response(ok)  # the right ant, the wrong deployment key
    with caplog.at_level(logging.WARNING):
        got = queen.read_responses("q", 0, 10)
    assert [d.message.ant_id for d in got] == ["ant-1"]  # only the genuine one
    assert caplog.text.count("authentication failed") == 2
    assert queen.redis.xlen(queen.key_responses) == 1  # the two bad ones are gone


def test_clear_text_is_refused_when_encryption_is_on_and_sealed_entries_when_it_is_off(make, caplog) -> None:
    sealed, clear = make(), make("")
    clear.send_task("ant-1", request())
    sealed.send_task("ant-2", request("ant-2"))
    with caplog.at_level(logging.WARNING):
        assert sealed.read_tasks("ant-1", "c", 0, 10) == []
        assert clear.read_tasks("ant-2", "c", 0, 10) == []
    assert "clear-text entry" in caplog.text and "message encryption is off here" in caplog.text
    assert MARK not in caplog.text
    clear.send_task("ant-3", request("ant-3"))
    (raw,) = entries(clear, clear.key_tasks("ant-3"))
    assert set(raw) == {FIELD} and MARK.encode() in raw[FIELD]  # off: in clear, as before


def test_an_ant_holding_only_its_own_key_cannot_read_another_ants_requests(make, caplog) -> None:
    queen = make()
    ant1 = make(export_ant_key(SECRET, "ant-1"))
    queen.send_task("ant-1", request())
    queen.send_task("ant-2", request("ant-2"))
    assert len(ant1.read_tasks("ant-1", "c", 0, 10)) == 1
    with caplog.at_level(logging.WARNING):
        assert ant1.read_tasks("ant-2", "c", 0, 10) == []
    assert "no key for ant 'ant-2'" in caplog.text
    # and what it sends opens at the queen
    ant1.send_response(
        TaskResponse(task_execution_id=7, job_request_id=3, status="COMPLETED", ant_id="ant-1")
    )
    assert len(queen.read_responses("q", 0, 10)) == 1


def test_keys_are_per_ant_and_settings_are_checked() -> None:
    sealer = MessageSealer.from_setting(SECRET)
    blob = sealer.seal("task", "ant-1", b"x")
    with pytest.raises(ValueError, match="authentication failed"):
        sealer.open("task", "ant-2", blob)
    with pytest.raises(ValueError, match="authentication failed"):
        sealer.open("resp", "ant-1", blob)  # a request replayed as a response
    with pytest.raises(ValueError, match="at least 32 characters"):
        MessageSealer.from_setting("short")
    with pytest.raises(ValueError, match="ant-key:<ant id>"):
        MessageSealer.from_setting("ant-key:ant-1:bm90LWEta2V5")


def _manage(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_commands_print_an_ants_key_and_refuse_a_bad_or_foreign_one() -> None:
    on = {"FORMICARY_MESSAGE_ENCRYPTION": "true"}
    printed = _manage(["message_key", "--ant-id", "ant-1"], **on, FORMICARY_MESSAGE_KEY=SECRET)
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert printed.stdout.strip() == export_ant_key(SECRET, "ant-1")
    short = _manage(["check"], **on, FORMICARY_MESSAGE_KEY="short")
    assert (
        short.returncode != 0
        and "FORMICARY_MESSAGE_KEY: the message secret must have at least 32" in short.stderr
    )
    missing = _manage(["check"], **on, FORMICARY_MESSAGE_KEY="")
    assert missing.returncode != 0 and "FORMICARY_MESSAGE_KEY is not set" in missing.stderr
    foreign = _manage(["ant", "--id", "ant-2"], **on, FORMICARY_MESSAGE_KEY=printed.stdout.strip(),
                      REDIS_URL="redis://127.0.0.1:1/0")  # fmt: skip
    assert foreign.returncode != 0 and "the key of another ant, not of ant-2" in foreign.stderr


def test_registrations_name_the_key_and_a_queen_warns_once_about_an_ant_it_cannot_read(
    make, caplog, tmp_path
) -> None:
    queen, same, other, clear = make(), make(), make(secrets.token_urlsafe(32)), make("")
    own = make(export_ant_key(SECRET, "ant-4"))
    assert own.registration_key("ant-4") == queen.registration_key("ant-4")  # the same key, the same id
    worker = AntWorker(AntConfig(ant_id="ant-1", work_root=tmp_path), same)
    assert worker.registration().encryption_key == queen.registration_key("ant-1")
    queen.read_registrations(0)  # the cursor starts here
    same.publish_registration(worker.registration())
    for t, ant_id in ((other, "ant-2"), (clear, "ant-3"), (own, "ant-4")):
        t.publish_registration(AntRegistration(ant_id, encryption_key=t.registration_key(ant_id)))
    with caplog.at_level(logging.WARNING):
        regs = queen.read_registrations(0)
    assert {r.ant_id: r.encryption_key[:12] for r in regs} == {
        "ant-1": "aes-256-gcm:", "ant-2": "aes-256-gcm:", "ant-3": "", "ant-4": "aes-256-gcm:"
    }  # fmt: skip
    assert "ant ant-2 encrypts its messages with another FORMICARY_MESSAGE_KEY" in caplog.text
    assert "ant ant-3 does not encrypt its messages" in caplog.text
    assert "ant-1" not in caplog.text and "ant-4" not in caplog.text
    caplog.clear()
    other.publish_registration(AntRegistration("ant-2", encryption_key=other.registration_key("ant-2")))
    with caplog.at_level(logging.WARNING):
        assert len(queen.read_registrations(0)) == 1
    assert caplog.text == ""  # once per ant: its next heartbeats say nothing new
    clear.read_registrations(0)
    same.publish_registration(worker.registration())
    with caplog.at_level(logging.WARNING):
        clear.read_registrations(0)
    assert "ant ant-1 encrypts its messages and this process does not" in caplog.text
