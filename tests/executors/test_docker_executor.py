"""DOCKER executor against a real Docker engine (see conftest: no registry, a local busybox image).

Containers run with ``network_mode: none`` unless the task has services (then a per-task user
defined network is created), because the test engine runs with ``--bridge=none``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ants.config import AntConfig
from ants.containers import LABEL_ANT
from ants.executors.base import ERR_TASK_TIMEOUT, ERR_VALIDATION, ExecutionContext
from ants.executors.docker import ERR_IMAGE_PULL, ERR_OOM, DockerExecutor
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def executor(docker_host: str, docker_image: str, tmp_path: Path) -> DockerExecutor:
    cfg = AntConfig(
        ant_id=f"dk-{uuid.uuid4().hex[:8]}",
        work_root=tmp_path / "work",
        methods=["DOCKER"],
        docker={"host": docker_host, "network_mode": "none", "pull_policy": "if_not_present"},
    )
    return DockerExecutor(cfg)


def request(image: str, **spec: Any) -> TaskRequest:
    timeout = spec.pop("timeout_secs", None)
    variables = spec.pop("request_variables", {})
    secret_names = spec.pop("secret_names", [])
    spec.setdefault("container", {"image": image})
    return TaskRequest(
        task_execution_id=int(uuid.uuid4().int % 1_000_000),
        job_request_id=42,
        task_type="t1",
        method="DOCKER",
        organization_id="org-1",
        timeout_secs=timeout,
        spec=spec,
        variables=variables,
        secret_names=secret_names,
    )


class Logs:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))

    def out(self) -> list[str]:
        return [line for stream, line in self.lines if stream == "stdout"]

    def text(self) -> str:
        return "\n".join(line for _s, line in self.lines)


def run(executor: DockerExecutor, req: TaskRequest, tmp_path: Path, **kw: Any):  # type: ignore[no-untyped-def]
    logs = Logs()
    workdir = kw.pop("workdir", tmp_path / "wd")
    ctx = ExecutionContext(workdir=workdir, log=logs, **kw)
    return executor.execute(req, ctx), logs


def leftovers(client: Any, ant_id: str) -> list[str]:
    found = [c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_ANT}={ant_id}"})]
    found += [n.name for n in client.networks.list(filters={"label": f"{LABEL_ANT}={ant_id}"})]
    found += [v.name for v in client.volumes.list(filters={"label": f"{LABEL_ANT}={ant_id}"})]
    return found


def test_commands_run_in_order_with_environment(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(
        docker_image,
        before_script=["echo before"],
        script=["echo hello $GREETING", "printf 'no newline'", "pwd", "echo task=$FORMICARY_TASK_TYPE"],
        environment={"GREETING": "world"},
        variables={"V1": "x"},
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, logs.text()
    assert result.exit_code == "0"
    assert logs.out() == ["before", "hello world", "no newline", "/workspace", "task=t1"]
    assert "$ echo hello $GREETING" in [line for s, line in logs.lines if s == "system"]
    assert leftovers(docker_client, executor.ant_id) == []


def test_failing_command_sets_exit_code_and_failed_command(
    executor, docker_image, docker_client, tmp_path
) -> None:
    req = request(
        docker_image,
        script=["echo one", "echo oops >&2; sh -c 'exit 7'", "echo never"],
        after_script=["echo cleanup"],
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED
    assert result.exit_code == "7"
    assert result.failed_command == "echo oops >&2; sh -c 'exit 7'"
    assert logs.out() == ["one", "cleanup"]
    assert ("stderr", "oops") in logs.lines  # its own stream: the UI styles it apart
    assert leftovers(docker_client, executor.ant_id) == []


def test_after_script_failure_is_a_warning(executor, docker_image, tmp_path) -> None:
    req = request(docker_image, script=["true"], after_script=["exit 3"])
    result, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED
    assert any("after_script failed" in w for w in result.warnings)


def test_secrets_are_redacted(executor, docker_image, tmp_path) -> None:
    req = request(
        docker_image,
        script=["echo token is $API_TOKEN", "echo $MYVAL; exit 2"],
        environment={"API_TOKEN": "s3cr3t-value"},
        request_variables={"MYVAL": "hidden-one"},
        secret_names=["MYVAL"],
    )
    result, logs = run(executor, req, tmp_path)
    assert "s3cr3t-value" not in logs.text() and "hidden-one" not in logs.text()
    assert logs.out() == ["token is ****", "****"]
    assert "hidden-one" not in " ".join(result.stdout)


def test_task_context_from_file_and_markers(executor, docker_image, tmp_path) -> None:
    req = request(
        docker_image,
        script=[
            'echo "VERSION=1.2" >> "$FORMICARY_CONTEXT_FILE"',
            "echo 'export NAME=\"bob\"' >> $FORMICARY_CONTEXT_FILE",
            "echo '##formicary:context COLOR=red'",
        ],
    )
    result, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED
    assert result.task_context == {"VERSION": "1.2", "NAME": "bob", "COLOR": "red"}


def test_reference_context_markers(executor, docker_image, tmp_path) -> None:
    req = request(
        docker_image,
        script=["echo '::add-job-context Version::1.2.3'", "echo '::add-task-context Own::mine'"],
    )
    result, _ = run(executor, req, tmp_path)
    assert result.job_context == {"Version": "1.2.3"}
    assert result.task_context == {"Own": "mine"}


def test_services_reachable_by_name_and_alias(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(
        docker_image,
        services=[
            {
                "name": "web",
                "alias": "www",
                "image": docker_image,
                "entrypoint": ["/bin/sh", "-c"],
                "command": [
                    "mkdir -p /srv && echo served-by-$SVC > /srv/index.html && exec httpd -f -p 8080 -h /srv"
                ],
                "environment": {"SVC": "web"},
            }
        ],
        script=[
            "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web:8080/ && break; sleep 0.3; done",
            "wget -qO- http://www:8080/",
        ],
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, logs.text()
    assert logs.out() == ["served-by-web", "served-by-web"]
    assert leftovers(docker_client, executor.ant_id) == []


def test_memory_hog_is_killed(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(
        docker_image,
        container={"image": docker_image, "memory_limit": "32Mi"},
        script=["echo start", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}", "echo never"],
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED, logs.text()
    assert result.exit_code == "137"
    assert result.error_code == ERR_OOM
    assert "out of memory" in result.error_message
    assert result.failed_command.startswith("x=$(head")
    assert leftovers(docker_client, executor.ant_id) == []


def test_cpu_and_memory_limits_are_applied(executor, docker_image, tmp_path) -> None:
    req = request(
        docker_image,
        container={"image": docker_image, "memory_limit": "64Mi", "cpu_limit": "500m"},
        script=[
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null"
            " || cat /sys/fs/cgroup/cpu.max",
        ],
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, logs.text()
    out = logs.out()
    assert out[0] == str(64 * 1024 * 1024)
    quota = out[1:] if len(out) == 3 else out[1].split()
    assert int(quota[0]) * 2 == int(quota[1])  # half a CPU


def test_bad_quantity_fails_cleanly(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(docker_image, container={"image": docker_image, "memory_limit": "lots"}, script=["true"])
    result, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED and result.error_code == ERR_VALIDATION
    assert "memory_limit" in result.error_message
    assert leftovers(docker_client, executor.ant_id) == []


def test_artifacts_round_trip(executor, docker_image, tmp_path) -> None:
    """The ant's work directory (dependencies downloaded by the artifact hooks) is the container's
    working dir; declared artifact and cache paths come back to the same relative paths."""
    workdir = tmp_path / "wd"
    (workdir / "sub").mkdir(parents=True)
    (workdir / "input.txt").write_text("from the ant\n")
    (workdir / "sub" / "deep.txt").write_text("deep\n")
    req = request(
        docker_image,
        working_dir="/sample",
        script=[
            "pwd",
            "cat input.txt sub/deep.txt",
            "mkdir -p out && cat input.txt > out/result.txt && echo more >> out/result.txt",
            "echo cached > cache.bin",
            "echo scratch > not-declared.txt",
        ],
        artifacts={"paths": ["out/result.txt", "missing.txt"]},
        cache={"paths": ["cache.bin"]},
    )
    result, logs = run(executor, req, tmp_path, workdir=workdir)
    assert result.status == STATUS_COMPLETED, logs.text()
    assert logs.out() == ["/sample", "from the ant", "deep"]
    assert (workdir / "out" / "result.txt").read_text() == "from the ant\nmore\n"
    assert (workdir / "cache.bin").read_text() == "cached\n"
    assert not (workdir / "not-declared.txt").exists()
    assert not (workdir / "missing.txt").exists()


def test_glob_artifacts_copy_the_whole_working_dir(executor, docker_image, tmp_path) -> None:
    req = request(
        docker_image, script=["echo a > a.log", "mkdir d && echo b > d/b.log"], artifacts={"paths": ["*.log"]}
    )
    result, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED
    assert (tmp_path / "wd" / "a.log").read_text() == "a\n"
    assert (tmp_path / "wd" / "d" / "b.log").read_text() == "b\n"


def test_timeout_kills_and_cleans_up(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(
        docker_image,
        timeout_secs=1.5,
        script=["echo started", "sleep 60", "echo never"],
        after_script=["echo after-timeout"],
    )
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED
    assert result.error_code == ERR_TASK_TIMEOUT
    assert result.failed_command == "sleep 60"
    assert logs.out() == ["started", "after-timeout"]  # killed: "echo never" never ran
    assert leftovers(docker_client, executor.ant_id) == []


def test_cancel_kills_and_cleans_up(executor, docker_image, docker_client, tmp_path) -> None:
    cancel = threading.Event()
    req = request(docker_image, script=["echo started", "sleep 60", "echo never"],
                  after_script=["echo not-after-cancel"])  # fmt: skip
    timer = threading.Timer(1.5, cancel.set)
    timer.start()
    try:
        result, logs = run(executor, req, tmp_path, cancel_event=cancel)
    finally:
        timer.cancel()
    assert result.status == STATUS_CANCELLED
    assert logs.out() == ["started"]  # killed: "echo never" never ran
    assert leftovers(docker_client, executor.ant_id) == []


def test_background_process_does_not_hang_the_command(executor, docker_image, tmp_path) -> None:
    req = request(docker_image, timeout_secs=20, script=["sleep 100 & echo bg", "echo next"])
    result, logs = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED  # a wait for the background sleep would time out
    assert logs.out() == ["bg", "next"]


def test_missing_image_is_a_pull_error(executor, docker_client, tmp_path) -> None:
    req = request("formicary-test/does-not-exist:nope", script=["true"])
    result, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED
    assert result.error_code == ERR_IMAGE_PULL
    assert "does-not-exist" in result.error_message
    executor.settings["pull_policy"] = "never"
    result, _ = run(executor, req, tmp_path)
    assert result.error_code == ERR_IMAGE_PULL and "never" in result.error_message
    assert leftovers(docker_client, executor.ant_id) == []


def test_list_and_terminate_running_containers(executor, docker_image, docker_client, tmp_path) -> None:
    req = request(docker_image, script=["echo up", "sleep 60"])
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(executor, req, tmp_path)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not listed:
            listed = executor.list_containers()
            time.sleep(0.2)
        assert len(listed) == 1
        info = listed[0]
        assert info["task_execution_id"] == str(req.task_execution_id)
        assert info["organization_id"] == "org-1" and info["method"] == "DOCKER"
        assert executor.list_containers(organization_id="org-2") == []
        assert executor.terminate(info["id"], organization_id="org-2") is False
        assert executor.terminate(info["id"], organization_id="org-1") is True
        thread.join(30)
        result, _ = box["result"]
        assert result.status == STATUS_FAILED
        assert leftovers(docker_client, executor.ant_id) == []
    finally:
        thread.join(30)
