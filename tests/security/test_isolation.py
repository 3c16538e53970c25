"""Tenants apart on a shared ant: SHELL tasks run as their organization's user (we run as root
here) and cannot read the data folder, the database or another organization's task folder;
SHELL on a shared ant is refused unless an operator allows it."""

import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.executors import isolation
from ants.executors.base import ExecutionContext
from ants.executors.isolation import SHARED_SHELL_SETTING, TASK_UID_BASE, TASK_USERS_SETTING, closed_folder
from ants.executors.shell import ShellExecutor
from ants.protocol import TaskRequest
from formicary_site import data_folder
from jobs.management.commands.standalone import _single_organization

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def task(org: str, task_id: int, script: list[str]) -> TaskRequest:
    return TaskRequest(task_execution_id=task_id, job_request_id=task_id, task_type="t", organization_id=org,
                       spec={"script": script})  # fmt: skip


def run(executor: ShellExecutor, req: TaskRequest, workdir: Path, cancel: threading.Event | None = None):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    ctx = ExecutionContext(workdir=workdir, log=lambda stream, line: lines.append(line),
                           cancel_event=cancel or threading.Event())  # fmt: skip
    return executor.execute(req, ctx), "\n".join(lines)


@pytest.fixture
def install(monkeypatch):  # type: ignore[no-untyped-def]
    """A standalone data folder as `manage.py standalone` leaves it, under a folder others may enter."""
    monkeypatch.setenv(TASK_USERS_SETTING, "true")
    base = Path(tempfile.mkdtemp(prefix="formicary-iso-", dir="/tmp"))
    os.chmod(base, 0o755)
    data = base / "data"
    (data / "artifacts" / "1").mkdir(parents=True)
    (data / "artifacts" / "1" / "report.txt").write_text("org-a-artifact-secret\n")
    with sqlite3.connect(data / "formicary.sqlite3") as db:
        db.execute("create table t (v text)")
        db.execute("insert into t values ('org-a-db-secret')")
    umask = os.umask(0o022)
    try:
        data_folder.protect(data)
    finally:
        os.umask(umask)
    yield data
    import shutil

    shutil.rmtree(base, ignore_errors=True)


@root_only
def test_a_task_cannot_read_the_data_folder_the_database_or_another_orgs_task(install):
    executor = ShellExecutor(AntConfig(ant_id="shared", shared_shell=True))
    work = install / "work"
    a_dir = work / "1-1"
    cancel_a = threading.Event()
    ran_a: dict = {}
    org_a = threading.Thread(target=lambda: ran_a.update(
        out=run(executor, task("1", 1, ["echo org-a-task-secret > mine.txt; sleep 30"]), a_dir, cancel_a)))  # fmt: skip
    org_a.start()
    try:
        deadline = time.monotonic() + 20
        while not (a_dir / "mine.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (a_dir / "mine.txt").exists()
        targets = [
            install / "artifacts" / "1" / "report.txt",
            install / "formicary.sqlite3",
            a_dir / "mine.txt",
        ]
        script = ["id -u; ls " + str(install) + " || true"] + [f"cat {p} || true" for p in targets]
        script += ['echo own > own.txt && cat own.txt && echo X=1 >> "$FORMICARY_CONTEXT_FILE"']
        result, out = run(executor, task("2", 2, script), work / "2-1")
    finally:
        cancel_a.set()
        org_a.join(timeout=30)
    assert result.status == "COMPLETED", out
    assert str(TASK_UID_BASE + 2) in out.splitlines()
    assert out.count("Permission denied") >= len(targets) + 1, out  # the listing and every file
    for secret in ("org-a-artifact-secret", "org-a-db-secret", "org-a-task-secret"):
        assert secret not in out
    assert "own" in out and result.task_context == {"X": "1"}  # its own folder works
    owner = (work / "2-1").stat()
    assert (owner.st_uid, owner.st_mode & 0o777) == (TASK_UID_BASE + 2, 0o700)


@root_only
def test_a_context_file_symlinked_elsewhere_is_not_read(install):
    executor = ShellExecutor(AntConfig(ant_id="shared", shared_shell=True))
    target = install / "formicary.sqlite3"
    result, out = run(
        executor, task("2", 3, [f'ln -sf {target} "$FORMICARY_CONTEXT_FILE"']), install / "work" / "3-1"
    )
    assert result.status == "COMPLETED", out
    assert result.task_context == {} and any("context file" in w for w in result.warnings)


@root_only
@pytest.mark.parametrize("through", ["setpriv", "popen"])
def test_a_task_runs_as_its_user_without_groups_or_capabilities(install, monkeypatch, through):
    """The switch of user through setpriv (which lets Python vfork the ant) and through Popen's
    own arguments (a host without setpriv) leave a task the same: its organization's uid and gid,
    no supplementary groups, no capabilities, in its own folder."""
    if through == "setpriv":
        assert isolation.SETPRIV is not None, "util-linux's setpriv is one of the test's packages"
    else:
        monkeypatch.setattr(isolation, "SETPRIV", None)
    executor = ShellExecutor(AntConfig(ant_id="shared", shared_shell=True))
    script = ["id -u; id -g; id -G; grep CapEff /proc/self/status; pwd"]
    result, out = run(executor, task("3", 5, script), install / "work" / "5-1")
    assert result.status == "COMPLETED", out
    uid = str(TASK_UID_BASE + 3)
    assert out.splitlines()[1:] == [uid, uid, uid, "CapEff:\t0000000000000000", str(install / "work" / "5-1")]


def test_shell_on_a_shared_ant_is_refused_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_SHELL_SETTING, raising=False)
    req = task("2", 4, ["echo ran"])
    shared = AntConfig(ant_id="shared-ant", work_root=tmp_path)
    assert shared.shared_shell is False
    result, out = run(ShellExecutor(shared), req, tmp_path / "a")
    assert result.status == "FAILED" and "ran" not in out.splitlines()
    assert f"{SHARED_SHELL_SETTING}=true" in result.error_message and "shared-ant" in result.error_message

    for allowed in (
        ShellExecutor(AntConfig(ant_id="x", work_root=tmp_path, shared_shell=True)),
        ShellExecutor(AntConfig(ant_id="x", work_root=tmp_path, organization_id="2")),  # an org's own ant
        ShellExecutor(shared, single_tenant=lambda: True),  # standalone with one organization
    ):
        result, out = run(allowed, req, tmp_path / "b")
        assert result.status == "COMPLETED", out
    monkeypatch.setenv("FORMICARY_ANT_SHARED_SHELL", "true")
    assert AntConfig.from_env().shared_shell is True


def test_standalone_allows_shell_only_while_there_is_one_organization(alice, request):
    assert _single_organization() is True
    request.getfixturevalue("bob")
    assert _single_organization() is False


@root_only
def test_standalone_as_root_keeps_task_folders_where_task_users_can_enter(settings, monkeypatch):
    from jobs.management.commands.standalone import _work_root

    monkeypatch.setenv(TASK_USERS_SETTING, "true")
    monkeypatch.delenv("FORMICARY_ANT_WORK_ROOT", raising=False)
    home = Path(tempfile.mkdtemp(prefix="formicary-home-", dir="/tmp"))  # 0700: closed, like /root
    try:
        settings.DATA_DIR = home / "data"
        work = _work_root()
        assert home not in work.parents and closed_folder(work) is None
        assert (work.stat().st_uid, work.stat().st_mode & 0o777) == (0, 0o711)
        work.rmdir()
        os.chmod(home, 0o755)
        assert _work_root() == home / "data" / "work"
    finally:
        os.rmdir(home)
