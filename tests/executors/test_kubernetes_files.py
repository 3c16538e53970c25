# ruff: noqa: F811 - the stand-in fixtures are imported from test_kubernetes_executor
"""KUBERNETES file transfer against the local stand-in: the ant's work directory goes into the
pod (packed in the manifest), declared artifact/cache paths come back (on marker log lines).

The stand-in runs the pod's script with the local shell, so the real prologue/epilogue (base64,
tar, sed) run; what it cannot show is a real kubelet: log size limits (``containerLogMaxSize``)
and the API server's request size limit are untested here.
"""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import pytest

from ants.executors.base import ERR_VALIDATION
from ants.executors.kube_pod import pod_name
from ants.executors.kubernetes import (
    INPUT_CHUNK_CHARS,
    declared_paths,
    pack_input,
    pack_script,
    unpack_output,
)
from ants.protocol import STATUS_COMPLETED, STATUS_FAILED

from .test_kubernetes_executor import executor, request, run, standin  # noqa: F401, F811 - fixtures

pytestmark = pytest.mark.timeout(60)


def workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "wd"
    (wd / "deps" / "lib").mkdir(parents=True)
    (wd / "deps" / "lib" / "input.txt").write_text("from the dependency\n")
    (wd / ".cache").mkdir()
    (wd / ".cache" / "warm").write_text("cached\n")
    return wd


def test_work_directory_goes_in_and_declared_paths_come_back(executor, standin, tmp_path) -> None:
    wd = workdir(tmp_path)
    req = request(
        script=[
            "cat deps/lib/input.txt .cache/warm",
            'env | grep -c "^FORMICARY_INPUT_" || true',  # unset before the commands
            "mkdir -p out && echo built > out/app.bin && echo log > out/build.log",
            "echo again >> .cache/warm",
            "echo scratch > not-declared.txt",
        ],
        artifacts={"paths": ["out", "missing-file"]},
        cache={"paths": [".cache"]},
    )
    result, out, lines = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, result.error_message
    assert out == ["from the dependency", "cached", "0"]  # marker lines never reach the log
    assert (wd / "out" / "app.bin").read_text() == "built\n"
    assert (wd / "out" / "build.log").read_text() == "log\n"
    assert (wd / ".cache" / "warm").read_text() == "cached\nagain\n"
    assert not (wd / "not-declared.txt").exists()
    assert any("copied 3 files back" in line for _, line in lines)
    assert result.warnings == []
    # the input travelled in the manifest, not over a side channel
    assert standin.verbs(pod_name(req)) == ["create", "watch", "log", "read", "delete"]


def test_files_come_back_from_a_failed_task_too(executor, tmp_path) -> None:
    wd = tmp_path / "wd"
    req = request(
        script=["mkdir -p reports && echo red > reports/junit.xml", "exit 3"],
        artifacts={"paths": ["reports"]},
    )
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED and result.exit_code == "3"
    assert (wd / "reports" / "junit.xml").read_text() == "red\n"


def test_a_glob_copies_the_whole_working_directory(executor, tmp_path) -> None:
    wd = tmp_path / "wd"
    req = request(
        script=["echo a > a.txt", "mkdir -p sub && echo b > sub/b.log"], artifacts={"paths": ["*.txt"]}
    )
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, result.error_message
    assert (wd / "a.txt").read_text() == "a\n" and (wd / "sub" / "b.log").read_text() == "b\n"


def test_no_files_no_transfer(executor, tmp_path) -> None:
    req = request(script=['env | grep -c "^FORMICARY_INPUT_" || true'])
    result, out, lines = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED and out == ["0"]
    assert not any("cop" in line for _, line in lines)


def test_large_inputs_span_several_variables(executor, tmp_path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    blob = base64.b64encode(random.Random(7).randbytes(250_000)).decode()  # does not compress
    (wd / "big.txt").write_text(blob)
    assert len(pack_input(wd, 10**9)) > 1
    req = request(script=['test "$(cat big.txt | wc -c)" -eq ' + str(len(blob)), "echo ok"])
    result, out, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, (result.error_message, out)
    assert out == ["ok"]


def test_too_large_input_fails_before_a_pod_is_created(executor, standin, tmp_path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "huge").write_bytes(os.urandom(200_000))
    executor.settings["max_input_bytes"] = 100_000
    req = request(script=["echo never"])
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED and result.error_code == ERR_VALIDATION
    assert "max_input_bytes" in result.error_message and "DOCKER" in result.error_message
    assert standin.calls == []


def test_helpers(tmp_path) -> None:
    warnings: list[str] = []
    spec = {"artifacts": {"paths": ["/out/", "../escape", "out"]}, "cache": {"paths": ["c"]}}
    assert declared_paths(spec, "declared", warnings) == ["out", "c"]
    assert warnings and "outside the working directory" in warnings[0]
    assert declared_paths(spec, "all", []) is None
    assert declared_paths({}, "declared", []) == [] and pack_script([], "m") == ""
    assert pack_input(tmp_path / "nothing", 10) == []
    chunks = pack_input(workdir(tmp_path), 10**9)
    assert all(len(c) <= INPUT_CHUNK_CHARS for c in chunks)
    dest = tmp_path / "dest"
    dest.mkdir()
    text = "".join(chunks)
    assert unpack_output([text[i : i + 76] for i in range(0, len(text), 76)], dest) == 2
    assert (dest / "deps" / "lib" / "input.txt").read_text() == "from the dependency\n"
    with pytest.raises(ValueError):
        unpack_output(["not base64!!"], dest)
