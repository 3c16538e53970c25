"""The ant's artifact hooks: uploads per ``when``, directories, dependencies, caches, logs,
and hostile paths refused with nothing stored. No database, no Django: the ant has neither."""

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from ants.artifact_hooks import ERR_ARTIFACT, cache_key, install_artifact_hooks, safe_extract
from ants.artifact_store import UnsafePath
from ants.executors.base import ExecutionResult
from ants.protocol import STATUS_COMPLETED, STATUS_FAILED, TaskRequest
from tests.artifacts.conftest import stored_keys


class FakeWorker:
    def __init__(self, work_root: Path) -> None:
        self.config = SimpleNamespace(work_root=work_root)
        self.log_listeners: list = []

    def print_line(self, req, stream, line):  # type: ignore[no-untyped-def]
        """What AntWorker does for each line a task prints: its listeners see it."""
        for listener in self.log_listeners:
            listener(req, stream, line)


def request(spec: dict, task_type: str = "build", **kw) -> TaskRequest:  # type: ignore[type-arg]
    return TaskRequest(task_execution_id=kw.pop("task_execution_id", 7), job_request_id=3, task_type=task_type,
                       organization_id="11", job_type="ci", spec=spec, **kw)  # fmt: skip


@pytest.fixture
def setup(raw_store, tmp_path):  # type: ignore[no-untyped-def]
    worker = FakeWorker(tmp_path / "work")
    hooks = install_artifact_hooks(worker, raw_store)
    return SimpleNamespace(worker=worker, hooks=hooks, store=raw_store, root=tmp_path / "work")


def run_task(setup, req: TaskRequest, body, status: str = STATUS_COMPLETED) -> ExecutionResult:  # type: ignore[no-untyped-def]
    workdir = setup.root / f"{req.task_execution_id}-{req.attempt}"
    workdir.mkdir(parents=True, exist_ok=True)
    setup.worker.before_execute(req, workdir)
    body(workdir)
    result = ExecutionResult(status=status, exit_code="0" if status == STATUS_COMPLETED else "1")
    setup.worker.after_execute(req, workdir, result)
    return result


def by_kind(result: ExecutionResult, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [a for a in result.artifacts if a["kind"] == kind]


def test_files_directories_and_globs_are_uploaded(setup):
    def body(wd: Path) -> None:
        (wd / "dist" / "sub").mkdir(parents=True)
        (wd / "dist" / "app.js").write_text("app")
        (wd / "dist" / "sub" / "x.txt").write_text("x")
        (wd / "report-1.xml").write_text("<r/>")
        (wd / "report-2.xml").write_text("<r/>")

    req = request({"artifacts": {"paths": ["dist", "report-*.xml", "missing.txt"], "expires_after": 3600}})
    result = run_task(setup, req, body)
    assert result.status == STATUS_COMPLETED
    arts = by_kind(result, "ARTIFACT")
    assert [a["name"] for a in arts] == ["dist.tar.gz", "report-1.xml", "report-2.xml"]
    assert arts[0]["metadata"] == {"archive": "tar.gz", "path": "dist"}
    assert all(a["storage_key"].startswith("org-11/3/build/") for a in arts)
    assert arts[1]["content_type"] == "application/xml" and arts[1]["expires_after"] == 3600
    assert any("missing.txt" in w for w in result.warnings)
    assert len(by_kind(result, "LOG")) == 1


@pytest.mark.parametrize(
    ("when", "status", "uploaded"),
    [(None, STATUS_COMPLETED, True), (None, STATUS_FAILED, False), ("onSuccess", STATUS_FAILED, False),
     ("onFailure", STATUS_FAILED, True), ("onFailure", STATUS_COMPLETED, False), ("always", STATUS_FAILED, True),
     ("always", STATUS_COMPLETED, True)],
)  # fmt: skip
def test_when(setup, when, status, uploaded):
    spec = {"artifacts": {"paths": ["out.txt"], **({"when": when} if when else {})}}
    result = run_task(setup, request(spec), lambda wd: (wd / "out.txt").write_text("o"), status)
    assert bool(by_kind(result, "ARTIFACT")) is uploaded


def test_symlink_out_of_the_workdir_fails_the_task_and_uploads_nothing(setup, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")

    def body(wd: Path) -> None:
        (wd / "ok.txt").write_text("fine")
        (wd / "leak.txt").symlink_to(secret)

    result = run_task(setup, request({"artifacts": {"paths": ["ok.txt", "leak.txt"]}}), body)
    assert result.status == STATUS_FAILED and result.error_code == ERR_ARTIFACT
    assert "leak.txt" in result.error_message and "outside" in result.error_message
    assert by_kind(result, "ARTIFACT") == []
    assert all(k.endswith(".log") for k in stored_keys(setup.store))


def test_symlink_inside_a_directory_leading_out_is_refused(setup):
    def body(wd: Path) -> None:
        (wd / "dist").mkdir()
        (wd / "dist" / "etc").symlink_to("/etc")

    result = run_task(setup, request({"artifacts": {"paths": ["dist"]}}), body)
    assert result.error_code == ERR_ARTIFACT and "dist/etc" in result.error_message


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "a/../../b"])
def test_dotdot_and_absolute_artifact_paths_fail(setup, path):
    result = run_task(setup, request({"artifacts": {"paths": [path]}}), lambda wd: None)
    assert result.status == STATUS_FAILED and result.error_code == ERR_ARTIFACT
    assert all(k.endswith(".log") for k in stored_keys(setup.store))


def test_dependencies_are_downloaded_and_directories_unpacked(setup):
    def produce(wd: Path) -> None:
        (wd / "lib").mkdir()
        (wd / "lib" / "a.txt").write_text("A")
        (wd / "notes.txt").write_text("N")

    first = run_task(setup, request({"artifacts": {"paths": ["lib", "notes.txt"]}}), produce)
    downloads = [{"kind": "ARTIFACT", "storage_key": a["storage_key"], "name": a["name"], "path": a["name"],
                  "archive": a["metadata"].get("archive", ""), "sha256": a["sha256"]}
                 for a in by_kind(first, "ARTIFACT")]  # fmt: skip
    seen = {}

    def consume(wd: Path) -> None:
        seen["lib"] = (wd / "lib" / "a.txt").read_text()
        seen["notes"] = (wd / "notes.txt").read_text()

    run_task(setup, request({"artifact_downloads": downloads}, "test", task_execution_id=8), consume)
    assert seen == {"lib": "A", "notes": "N"}


@pytest.mark.parametrize("path", ["../evil.txt", "/tmp/evil.txt"])
def test_download_to_a_path_outside_is_refused(setup, tmp_path, path):
    src = tmp_path / "payload"
    src.write_text("evil")
    setup.store.put_file("org-11/3/x/u/evil.txt", src)
    req = request({"artifact_downloads": [{"kind": "ARTIFACT", "storage_key": "org-11/3/x/u/evil.txt",
                                           "name": path, "path": path}]})  # fmt: skip
    wd = setup.root / "7-1"
    wd.mkdir(parents=True)
    with pytest.raises(UnsafePath):
        setup.worker.before_execute(req, wd)
    assert not (setup.root / "evil.txt").exists() and list(wd.iterdir()) == []


def _tar(members: list[tarfile.TarInfo], dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"evil") if m.isfile() else None)
    return dest


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "members",
    [[_file("ok.txt"), _file("../evil.txt")], [_file("/tmp/evil-abs.txt")],
     [_link("ln", "/etc"), _file("ln/evil.txt")], [_link("up", "../../..")]],
)  # fmt: skip
def test_hostile_archives_are_refused_before_anything_is_written(tmp_path, members):
    archive = _tar(members, tmp_path / "a.tar.gz")
    dest = tmp_path / "wd"
    dest.mkdir()
    with pytest.raises(UnsafePath):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_cache_saved_when_key_changes_and_restored(setup):
    cache = {"key_paths": ["package.json"], "paths": ["node_modules"]}

    def install(wd: Path) -> None:
        (wd / "package.json").write_text('{"v": 1}')
        (wd / "node_modules").mkdir(exist_ok=True)
        (wd / "node_modules" / "dep.js").write_text("dep")

    first = run_task(setup, request({"cache": cache}), install)
    (saved,) = by_kind(first, "CACHE")
    assert saved["group"] == cache_key(cache, setup.root / "7-1", allow_missing=True)
    assert saved["storage_key"].startswith("org-11/cache/ci/")
    entry = {"kind": "CACHE", "storage_key": saved["storage_key"], "name": "cache.tar.gz", "path": ".",
             "archive": "tar.gz", "sha256": saved["sha256"], "group": saved["group"]}  # fmt: skip
    seen = {}

    def again(wd: Path) -> None:
        seen["restored"] = (wd / "node_modules" / "dep.js").exists()
        install(wd)

    second = run_task(
        setup, request({"cache": cache, "artifact_downloads": [entry]}, task_execution_id=9), again
    )
    assert seen["restored"] is True
    assert by_kind(second, "CACHE") == []  # same key: not saved again


def test_log_is_captured_redacted_and_stored(setup, tmp_path):
    req = request({"environment": {"API_TOKEN": "s3cr3t-value"}})
    wd = setup.root / "7-1"
    wd.mkdir(parents=True)
    setup.worker.before_execute(req, wd)
    setup.worker.print_line(req, "stdout", "hello")
    setup.worker.print_line(req, "stdout", "token is s3cr3t-value")
    result = ExecutionResult()
    setup.worker.after_execute(req, wd, result)
    (log,) = by_kind(result, "LOG")
    text = b"".join(setup.store.iter_chunks(log["storage_key"])).decode()
    assert text == "hello\ntoken is ****\n"
