"""KUBERNETES executor call sequence against a local STAND-IN of the Kubernetes API.

No real API server can run here, so ``kube_standin.KubeStandIn`` serves just the endpoints the
executor uses, over HTTP, and a real ``kubernetes.client.ApiClient`` is pointed at it
(``Configuration.host``). The stand-in runs the main container's command with the local shell.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ants.config import AntConfig
from ants.executors.base import ERR_TASK_TIMEOUT, ERR_VALIDATION, ExecutionContext
from ants.executors.kube_pod import pod_name
from ants.executors.kubernetes import ERR_IMAGE_PULL, ERR_OOM, KubernetesExecutor
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

from .kube_standin import KubeStandIn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def standin() -> Iterator[KubeStandIn]:
    server = KubeStandIn()
    yield server
    server.close()


@pytest.fixture
def executor(standin: KubeStandIn, tmp_path: Path) -> KubernetesExecutor:
    cfg = AntConfig(
        ant_id="kube-ant",
        work_root=tmp_path,
        methods=["KUBERNETES"],
        kubernetes={"host": standin.url, "namespace": "jobs", "watch_secs": 2},
    )
    executor = KubernetesExecutor(cfg)
    executor.core()  # the first import of the client takes a while: not part of the timings
    return executor


def request(image: str = "busybox", **spec: Any) -> TaskRequest:
    timeout = spec.pop("timeout_secs", None)
    spec.setdefault("container", {"image": image})
    return TaskRequest(
        task_execution_id=int(uuid.uuid4().int % 1_000_000),
        job_request_id=9,
        task_type="k8-task",
        method="KUBERNETES",
        organization_id="org-1",
        timeout_secs=timeout,
        spec=spec,
    )


def run(executor: KubernetesExecutor, req: TaskRequest, tmp_path: Path, **kw: Any):  # type: ignore[no-untyped-def]
    lines: list[tuple[str, str]] = []
    ctx = ExecutionContext(workdir=tmp_path / "wd", log=lambda s, line: lines.append((s, line)), **kw)
    result = executor.execute(req, ctx)
    return result, [line for s, line in lines if s == "stdout"], lines


def test_success_call_sequence_and_output(executor, standin, tmp_path) -> None:
    req = request(
        before_script=["echo before"],
        script=["echo hello $WHO", "printf 'partial'", "pwd | sed 's#.*/##'"],
        after_script=["echo after"],
        environment={"WHO": "kube"},
    )
    result, out, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED, result.error_message
    assert result.exit_code == "0"
    assert out == ["before", "hello kube", "partial", "workspace", "after"]
    assert standin.verbs(pod_name(req)) == ["create", "watch", "log", "read", "delete"]
    assert standin.pods == {}


def test_failed_command_exit_code_and_failed_command(executor, standin, tmp_path) -> None:
    req = request(script=["echo one", "exit 5", "echo never"], after_script=["echo after", "exit 2"])
    result, out, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED
    assert result.exit_code == "5" and result.failed_command == "exit 5"
    assert out == ["one", "after"]
    assert any("after_script failed" in w for w in result.warnings)
    assert standin.verbs(pod_name(req))[-1] == "delete" and standin.pods == {}


def test_task_context_is_read(executor, tmp_path) -> None:
    req = request(script=['echo "A=1" >> "$FORMICARY_CONTEXT_FILE"', "echo '##formicary:context B=2'"])
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_COMPLETED
    assert result.task_context == {"A": "1", "B": "2"}


def test_cancel_deletes_the_pod(executor, standin, tmp_path) -> None:
    cancel = threading.Event()
    req = request(script=["echo started", "sleep 30"])
    timer = threading.Timer(1.5, cancel.set)
    timer.start()
    try:
        result, out, _ = run(executor, req, tmp_path, cancel_event=cancel)
    finally:
        timer.cancel()
    assert result.status == STATUS_CANCELLED
    assert out == ["started"]
    assert result.failed_command == "sleep 30"
    assert standin.verbs(pod_name(req)) == ["create", "watch", "log", "delete"]
    assert standin.pods == {}


def test_timeout_deletes_the_pod(executor, standin, tmp_path) -> None:
    req = request(script=["sleep 30"], timeout_secs=1.0)
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED and result.error_code == ERR_TASK_TIMEOUT
    assert standin.verbs(pod_name(req))[-1] == "delete" and standin.pods == {}


def test_image_pull_error(executor, standin, tmp_path) -> None:
    req = request("stand-in/pull-error", script=["true"])
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED and result.error_code == ERR_IMAGE_PULL
    assert "pull access denied" in result.error_message
    assert standin.verbs(pod_name(req)) == ["create", "watch", "delete"]


def test_oom_killed_container(executor, standin, tmp_path) -> None:
    req = request("stand-in/oom", script=["echo eat", "sleep 5"])
    result, _, _ = run(executor, req, tmp_path)
    assert result.status == STATUS_FAILED
    assert result.error_code == ERR_OOM and result.exit_code == "137"
    assert standin.pods == {}


def test_invalid_spec_creates_nothing(executor, standin, tmp_path) -> None:
    req = request(container={"image": "busybox", "memory_limit": "a lot"}, script=["true"])
    result, _, _ = run(executor, req, tmp_path)
    assert result.error_code == ERR_VALIDATION and "memory_limit" in result.error_message
    assert standin.calls == []


def test_list_and_terminate(executor, standin, tmp_path) -> None:
    req = request(script=["sleep 30"])
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(r=run(executor, req, tmp_path)))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        listed: list[dict[str, Any]] = []
        while not listed and time.monotonic() < deadline:
            listed = executor.list_containers()
            time.sleep(0.1)
        assert [c["id"] for c in listed] == [pod_name(req)]
        assert listed[0]["organization_id"] == "org-1" and listed[0]["method"] == "KUBERNETES"
        assert executor.list_containers("org-2") == []
        assert executor.terminate(pod_name(req), "org-2") is False
        assert executor.terminate(pod_name(req), "org-1") is True
        thread.join(15)
        assert box["r"][0].status == STATUS_FAILED
    finally:
        thread.join(15)
    assert standin.pods == {}


def test_worker_action_handlers_list_and_terminate(standin, tmp_path) -> None:
    from types import SimpleNamespace

    from ants.containers import install_container_handlers
    from ants.protocol import ACTION_LIST_CONTAINERS, ACTION_TERMINATE_CONTAINER

    cfg = AntConfig(
        ant_id="kube-ant-2", methods=["KUBERNETES"], kubernetes={"host": standin.url, "namespace": "jobs"}
    )
    worker = SimpleNamespace(config=cfg, action_handlers={})
    install_container_handlers(worker)
    executor = KubernetesExecutor(cfg)
    req = request(script=["sleep 30"])
    thread = threading.Thread(target=lambda: run(executor, req, tmp_path))
    thread.start()
    try:
        listing = TaskRequest(
            task_execution_id=0, job_request_id=0, task_type="", action=ACTION_LIST_CONTAINERS
        )
        deadline = time.monotonic() + 10
        containers: list[dict[str, Any]] = []
        while not containers and time.monotonic() < deadline:
            containers = worker.action_handlers[ACTION_LIST_CONTAINERS](listing).task_context["containers"]
            time.sleep(0.1)
        assert [c["id"] for c in containers] == [pod_name(req)]
        other_org = TaskRequest(task_execution_id=0, job_request_id=0, task_type="", action=ACTION_LIST_CONTAINERS,
                                organization_id="org-2")  # fmt: skip
        assert worker.action_handlers[ACTION_LIST_CONTAINERS](other_org).task_context["containers"] == []
        kill = TaskRequest(task_execution_id=0, job_request_id=0, task_type="", action=ACTION_TERMINATE_CONTAINER,
                           organization_id="org-1", spec={"container_id": pod_name(req)})  # fmt: skip
        assert worker.action_handlers[ACTION_TERMINATE_CONTAINER](kill).status == STATUS_COMPLETED
        thread.join(15)
        assert standin.pods == {}
    finally:
        thread.join(15)
