"""The task's LOG artifact: small logs stay in memory and are stored without a scratch file;
a large one spills to a scratch file and is stored whole; nothing is left behind."""

import hashlib
import re
import time
from pathlib import Path
from types import SimpleNamespace

from ants import artifact_hooks
from ants.artifact_hooks import install_artifact_hooks
from ants.executors.base import ExecutionResult
from ants.protocol import TaskRequest
from tests.artifacts.conftest import stored_keys


class FakeWorker:
    def __init__(self, work_root: Path) -> None:
        self.config = SimpleNamespace(work_root=work_root)
        self.log_listeners: list = []


def run(raw_store, tmp_path: Path, lines: list[str], task_execution_id: int = 7) -> tuple[dict, Path]:  # type: ignore[no-untyped-def, type-arg]
    worker = FakeWorker(tmp_path / "work")
    install_artifact_hooks(worker, raw_store)
    req = TaskRequest(task_execution_id=task_execution_id, job_request_id=3, task_type="build", organization_id="11",
                      spec={})  # fmt: skip
    workdir = tmp_path / "work" / f"{task_execution_id}-1"
    workdir.mkdir(parents=True)
    worker.before_execute(req, workdir)  # type: ignore[attr-defined]
    for text in lines:
        for listener in worker.log_listeners:
            listener(req, "stdout", text)
    result = ExecutionResult()
    worker.after_execute(req, workdir, result)  # type: ignore[attr-defined]
    (log,) = [a for a in result.artifacts if a["kind"] == "LOG"]
    return log, tmp_path / "work" / ".formicary-artifacts"


def content(raw_store, key: str) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(raw_store.iter_chunks(key))


def test_empty_and_small_logs_are_stored_without_a_scratch_file(raw_store, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    def no_put_file(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a small log goes through put_bytes")

    monkeypatch.setattr(raw_store, "put_file", no_put_file)
    log, scratch = run(raw_store, tmp_path, [])
    assert content(raw_store, log["storage_key"]) == b"" and log["size"] == 0
    assert log["sha256"] == hashlib.sha256(b"").hexdigest()
    log, scratch = run(raw_store, tmp_path, ["héllo", "world"], task_execution_id=8)
    data = "héllo\nworld\n".encode()
    assert content(raw_store, log["storage_key"]) == data
    assert (log["size"], log["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert log["content_type"] == "text/plain; charset=utf-8" and log["metadata"] == {"attempt": 1}
    assert not scratch.exists() or not any(scratch.iterdir())
    keys = stored_keys(raw_store)
    assert len(keys) == 2 and all(k.endswith("build.log") for k in keys)
    # one folder per organization and day for every task's log, not new folders per task
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert all(re.fullmatch(rf"org-11/logs/{day}/3-[0-9a-f]{{32}}-build\.log", k) for k in keys), keys


def test_a_large_log_spills_to_a_scratch_file_and_is_stored_whole(raw_store, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    def no_put_bytes(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a large log goes through its scratch file")

    monkeypatch.setattr(artifact_hooks, "LOG_MEMORY_CHARS", 1000)
    monkeypatch.setattr(raw_store, "put_bytes", no_put_bytes)
    lines = [f"line {i:05d}" for i in range(500)]  # about 6 KB
    log, scratch = run(raw_store, tmp_path, lines)
    data = "".join(f"{text}\n" for text in lines).encode()
    assert content(raw_store, log["storage_key"]) == data
    assert (log["size"], log["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert scratch.is_dir() and not any(scratch.iterdir())  # the spilled file was removed
