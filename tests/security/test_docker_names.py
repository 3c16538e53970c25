"""DOCKER tasks of different organizations never share a volume: names carry the organization
and the task, and host folders (shared by every task naming one) are off on a shared ant."""

import pytest

from ants.config import AntConfig
from ants.executors.base import ExecutionContext
from ants.executors.docker import DockerExecutor, _Fail, _Run
from ants.protocol import TaskRequest


class _Api:
    def __init__(self) -> None:
        self.volumes: list[str] = []

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.volumes.append(name)


def task_run(tmp_path, org: str, **config) -> _Run:  # type: ignore[no-untyped-def]
    req = TaskRequest(task_execution_id=7, job_request_id=7, task_type="t", organization_id=org, spec={})
    run = _Run(DockerExecutor(AntConfig(ant_id="docker-ant", work_root=tmp_path, **config)), req,
               ExecutionContext(workdir=tmp_path / "w"))  # fmt: skip
    run.api = _Api()
    return run


def test_volume_names_carry_the_organization_and_the_task(tmp_path):
    spec = {"empty_dir": [{"name": "cache", "mount_path": "/cache"}]}
    binds = {org: task_run(tmp_path, org)._volumes(spec, "container.volumes")[0][0] for org in ("1", "2")}
    assert binds["1"].startswith("formicary-o1-7-") and binds["2"].startswith("formicary-o2-7-")
    assert binds["1"].split(":")[0] != binds["2"].split(":")[0]


def test_host_paths_are_off_on_a_shared_ant_unless_allowed(tmp_path):
    spec = {"host_path": [{"name": "h", "mount_path": "/h", "host_path": "/srv/shared"}]}
    with pytest.raises(_Fail, match="FORMICARY_ANT_DOCKER_ALLOW_HOST_PATHS"):
        task_run(tmp_path, "1")._volumes(spec, "container.volumes")
    allowed = task_run(tmp_path, "1", docker={"allow_host_paths": True})
    assert allowed._volumes(spec, "container.volumes")[0] == ["/srv/shared:/h:rw"]
    own_ant = task_run(tmp_path, "1", organization_id="1")
    assert own_ant._volumes(spec, "container.volumes")[0] == ["/srv/shared:/h:rw"]
