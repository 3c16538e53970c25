"""Artifacts, dependencies, caches and task logs on the ant: hooks around every task.

``install_artifact_hooks(worker, store)`` sets the worker's ``before_execute`` / ``after_execute``:

Before the task (into the fresh working directory):
  - every entry of ``spec["artifact_downloads"]`` the queen computed: the artifacts of the tasks
    named in ``dependencies`` and ``artifact_ids`` (kind ARTIFACT, placed at ``path``; a
    directory comes as a ``tar.gz`` and is unpacked) and at most one cache (kind CACHE, unpacked
    into the working directory). Each entry: ``{"kind", "storage_key", "name", "path",
    "archive" ("tar.gz" or ""), "sha256", "group" (cache key)}``.

After the task:
  - ``artifacts.paths`` (files, directories, globs) when ``artifacts.when`` matches the outcome
    (``onSuccess`` (default), ``onFailure``, ``always``): one artifact per file, a ``tar.gz`` per
    directory. Every path is checked first (``..``, absolute, a symlink leading out of the working
    directory): one bad path fails the task with ERR_ARTIFACT and nothing is uploaded.
  - the cache (``cache.paths``) when the task completed and its key differs from the restored
    one. The key is ``cache.key``, or built from the sha256 of the ``cache.key_paths`` files.
  - the task's full output (the lines the worker logged, already redacted) as a LOG artifact,
    also when it printed nothing. It is kept in memory while small (most tasks print little) and
    goes to a scratch file beyond ``LOG_MEMORY_CHARS``, so memory stays bounded.
  - ``result.artifacts`` gets one metadata dict per uploaded object for the queen to record:
    name, kind, storage_key, size, sha256, content_type, expires_after (seconds or None),
    task_type, group, metadata.

Storage keys are ``org-<org>/<request>/<task>/<uuid>/<name>`` (caches
``org-<org>/cache/<job type>/<uuid>/cache.tar.gz``): unguessable, and never shared across
organizations. No Django import here: an ant needs only Redis and the object store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
import re
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ants.artifact_store import ArtifactStore, UnsafePath, inside, safe_relpath, sha256_of
from ants.executors.base import ExecutionResult, Redactor
from ants.protocol import STATUS_COMPLETED, STATUS_FAILED, TaskRequest

logger = logging.getLogger(__name__)

ERR_ARTIFACT = "ERR_ARTIFACT"
KIND_ARTIFACT, KIND_LOG, KIND_CACHE = "ARTIFACT", "LOG", "CACHE"
ARCHIVE = "tar.gz"
GLOB_CHARS = re.compile(r"[*?\[]")
SLUG_RE = re.compile(r"[^A-Za-z0-9_.\-]+")
STALE_STATE_SECS = 24 * 3600
LOG_MEMORY_CHARS = 64 * 1024  # a task's log beyond this goes to a scratch file
LOG_CONTENT_TYPE = "text/plain; charset=utf-8"


def slug(text: str) -> str:
    return SLUG_RE.sub("-", text).strip("-.")[:100] or "x"


def artifact_key_prefix(req: TaskRequest) -> str:
    """Where a task's artifacts go inside its organization's folder: the task's
    ``artifact_key_prefix`` (each part made safe) or ``<request id>/<task type>``."""
    prefix = str(req.spec.get("artifact_key_prefix") or "").replace("\\", "/")
    parts = [slug(part) for part in prefix.split("/") if part.strip() and part.strip() not in (".", "..")]
    return "/".join(parts) if parts else f"{req.job_request_id}/{slug(req.task_type)}"


def when_matches(when: str | None, status: str) -> bool:
    rule = (when or "onSuccess").replace("_", "").replace("-", "").lower()
    if rule == "always":
        return True
    if rule in ("onfailure", "failure", "failed"):
        return status == STATUS_FAILED
    return status == STATUS_COMPLETED


class _TaskLog:
    """A task's log text: in memory while small, then in a scratch file (bounded memory)."""

    def __init__(self, scratch: Path, task_execution_id: int) -> None:
        self._scratch = scratch
        self._prefix = f"log-{task_execution_id}-"
        self._parts: list[str] = []
        self._chars = 0
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self.closed = False

    def write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text)
            return
        self._parts.append(text)
        self._chars += len(text)
        if self._chars > LOG_MEMORY_CHARS:
            self._scratch.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._scratch, prefix=self._prefix, suffix=".txt")
            self.path, self._file = Path(name), os.fdopen(fd, "w", encoding="utf-8")
            self._file.write("".join(self._parts))
            self._parts = []

    def data(self) -> bytes:
        """The text written so far (call after ``close``, only when ``path`` is None)."""
        return "".join(self._parts).encode("utf-8")

    def close(self) -> None:
        self.closed = True
        if self._file is not None:
            self._file.close()

    def discard(self) -> None:
        self.close()
        self._parts = []
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass
class _TaskFiles:
    log: _TaskLog
    redact: Redactor
    restored_cache_key: str | None = None
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Found:
    rel: str
    path: Path
    is_dir: bool


class ArtifactHooks:
    def __init__(self, store: ArtifactStore, work_root: Path) -> None:
        self.store = store
        self.scratch = Path(work_root) / ".formicary-artifacts"
        self._tasks: dict[tuple[int, int], _TaskFiles] = {}
        self._lock = threading.Lock()

    # -- the log tee ------------------------------------------------------------------------------
    def capture(self, key: tuple[int, int], stream: str, line: str) -> None:
        with self._lock:
            files = self._tasks.get(key)
        if files is None:
            return
        with files.lock:
            if not files.log.closed:
                files.log.write(("" if stream == "stdout" else f"[{stream}] ") + files.redact(line) + "\n")

    # -- before -----------------------------------------------------------------------------------
    def before(self, req: TaskRequest, workdir: Path) -> None:
        workdir = task_dir(req, workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._forget_stale()
        files = _TaskFiles(_TaskLog(self.scratch, req.task_execution_id), Redactor.for_request(req))
        with self._lock:
            old = self._tasks.pop(req.key, None)
            self._tasks[req.key] = files
        if old is not None:
            self._discard(old)
        try:
            for entry in req.spec.get("artifact_downloads") or []:
                if entry.get("kind") == KIND_CACHE:
                    files.restored_cache_key = self._restore_cache(req, entry, workdir)
                else:
                    self._download(entry, workdir)
        except Exception:
            with self._lock:
                self._tasks.pop(req.key, None)
            self._discard(files)
            raise

    def _download(self, entry: dict[str, Any], workdir: Path) -> None:
        name = str(entry.get("name") or "")
        if entry.get("archive") == ARCHIVE:
            self._fetch_and_extract(str(entry["storage_key"]), workdir, entry.get("sha256") or "")
            return
        target = inside(workdir, str(entry.get("path") or name), "artifact path")
        if target.is_dir():
            raise UnsafePath(f"artifact path {name!r} is a directory in the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._scratch_file() as tmp:
            self.store.get_file(str(entry["storage_key"]), tmp)
            self._verify(tmp, entry.get("sha256") or "", name)
            os.replace(tmp, target)
        logger.info("downloaded artifact %s to %s", name, target)

    def _restore_cache(self, req: TaskRequest, entry: dict[str, Any], workdir: Path) -> str | None:
        key = str(entry.get("group") or "")
        cache = req.spec.get("cache") or {}
        if cache.get("key_paths"):
            current = cache_key(cache, workdir, allow_missing=False)
            if current is not None and current != key:
                return None  # the key files are here and changed: the old cache does not fit
        self._fetch_and_extract(str(entry["storage_key"]), workdir, entry.get("sha256") or "")
        logger.info("restored cache %s for %s", key, req.task_type)
        return key

    def _fetch_and_extract(self, storage_key: str, workdir: Path, sha256: str) -> None:
        with self._scratch_file() as tmp:
            self.store.get_file(storage_key, tmp)
            self._verify(tmp, sha256, storage_key)
            safe_extract(tmp, workdir)

    @staticmethod
    def _verify(path: Path, sha256: str, name: str) -> None:
        if sha256 and sha256_of(path) != sha256:
            raise ValueError(f"artifact {name!r}: sha256 does not match what was uploaded")

    @contextlib.contextmanager
    def _scratch_file(self) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix="obj-")
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    # -- after ------------------------------------------------------------------------------------
    def after(self, req: TaskRequest, workdir: Path, result: ExecutionResult) -> None:
        workdir = task_dir(req, workdir)
        with self._lock:
            files = self._tasks.pop(req.key, None)
        uploaded: list[dict[str, Any]] = []
        base = f"org-{slug(req.organization_id or 'none')}/{artifact_key_prefix(req)}"
        spec_artifacts = req.spec.get("artifacts") or {}
        try:
            if spec_artifacts.get("paths") and when_matches(spec_artifacts.get("when"), result.status):
                found = collect(workdir, list(spec_artifacts["paths"]), result.warnings)
                expires = _secs(spec_artifacts.get("expires_after"))
                for item in found:
                    uploaded.append(self._upload_found(req, base, item, expires))
        except UnsafePath as exc:
            self._fail(result, f"artifacts: {exc}; nothing was uploaded")
            self._drop(uploaded)
            uploaded = []
        except Exception as exc:
            logger.exception("artifact upload for %s failed", req.key)
            self._fail(result, f"artifacts: upload failed: {type(exc).__name__}: {exc}")
            self._drop(uploaded)
            uploaded = []
        cache = req.spec.get("cache") or {}
        if cache.get("paths") and result.status == STATUS_COMPLETED:
            try:
                saved = self._save_cache(req, workdir, cache, files.restored_cache_key if files else None)
                if saved is not None:
                    uploaded.append(saved)
            except Exception as exc:
                logger.warning("cache save for %s failed: %s", req.key, exc)
                result.warnings.append(f"cache not saved: {exc}")
        if files is not None:
            self._close(files)
            try:
                uploaded.append(self._upload_log(req, files.log))
            except Exception as exc:
                logger.warning("log upload for %s failed: %s", req.key, exc)
                result.warnings.append(f"task log not stored: {exc}")
            finally:
                files.log.discard()
        result.artifacts.extend(uploaded)

    def _upload_found(
        self, req: TaskRequest, base: str, item: _Found, expires: float | None
    ) -> dict[str, Any]:
        if item.is_dir:
            name = f"{item.rel}.{ARCHIVE}"
            with self._scratch_file() as tmp:
                make_archive(tmp, item.path.parent, [item.rel.rsplit("/", 1)[-1]], prefix=item.rel)
                stored = self.store.put_file(f"{base}/{uuid.uuid4().hex}/{name}", tmp, "application/gzip")
            return _meta(req, KIND_ARTIFACT, name, stored, "application/gzip", expires,
                         metadata={"archive": ARCHIVE, "path": item.rel})  # fmt: skip
        content_type = mimetypes.guess_type(item.rel)[0] or "application/octet-stream"
        stored = self.store.put_file(f"{base}/{uuid.uuid4().hex}/{item.rel}", item.path, content_type)
        return _meta(req, KIND_ARTIFACT, item.rel, stored, content_type, expires)

    def _save_cache(
        self, req: TaskRequest, workdir: Path, cache: dict[str, Any], restored: str | None
    ) -> dict[str, Any] | None:
        key = cache_key(cache, workdir, allow_missing=True) or "default"
        if key == restored:
            return None  # unchanged: the stored cache still fits
        found = collect(workdir, list(cache["paths"]), [])
        if not found:
            return None
        storage_key = f"org-{slug(req.organization_id or 'none')}/cache/{slug(req.job_type)}/{uuid.uuid4().hex}/cache.tar.gz"
        with self._scratch_file() as tmp:
            make_archive(tmp, workdir, [f.rel for f in found])
            stored = self.store.put_file(storage_key, tmp, "application/gzip")
        logger.info("saved cache %s of %s", key, req.task_type)
        return _meta(req, KIND_CACHE, "cache.tar.gz", stored, "application/gzip", _secs(cache.get("expires_after")),
                     group=key, metadata={"archive": ARCHIVE, "paths": [f.rel for f in found]})  # fmt: skip

    def _upload_log(self, req: TaskRequest, log: _TaskLog) -> dict[str, Any]:
        name = f"{slug(req.task_type)}.log"
        # every task has one: in a folder per organization and day, not per request and task
        # (new folders for each task cost the filesystem more than the log itself)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        key = f"org-{slug(req.organization_id or 'none')}/logs/{day}/{req.job_request_id}-{uuid.uuid4().hex}-{name}"
        if log.path is not None:
            stored = self.store.put_file(key, log.path, LOG_CONTENT_TYPE)
        else:  # no scratch file and no copy: most logs are a few lines
            stored = self.store.put_bytes(key, log.data(), LOG_CONTENT_TYPE)
        return _meta(req, KIND_LOG, name, stored, LOG_CONTENT_TYPE, None, metadata={"attempt": req.attempt})

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _fail(result: ExecutionResult, message: str) -> None:
        result.status = STATUS_FAILED
        result.error_code = ERR_ARTIFACT
        result.error_message = message
        result.exit_message = message

    def _drop(self, uploaded: list[dict[str, Any]]) -> None:
        for meta in uploaded:
            with contextlib.suppress(Exception):
                self.store.delete(meta["storage_key"])

    @staticmethod
    def _close(files: _TaskFiles) -> None:
        with files.lock:
            files.log.close()

    @staticmethod
    def _discard(files: _TaskFiles) -> None:
        with files.lock:
            files.log.discard()

    def _forget_stale(self) -> None:
        """A task whose executor raised never reaches ``after``: drop its log after a day."""
        now = time.monotonic()
        with self._lock:
            stale = [k for k, f in self._tasks.items() if now - f.started > STALE_STATE_SECS]
            gone = [self._tasks.pop(k) for k in stale]
        for files in gone:
            self._discard(files)


def _secs(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _meta(req: TaskRequest, kind: str, name: str, stored: Any, content_type: str, expires: float | None,
          *, group: str = "", metadata: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name, "kind": kind, "storage_key": stored.key, "size": stored.size, "sha256": stored.sha256,
        "content_type": content_type, "expires_after": expires, "task_type": req.task_type, "group": group,
        "metadata": metadata or {},
    }  # fmt: skip


def collect(workdir: Path, patterns: list[str], warnings: list[str]) -> list[_Found]:
    """Files and directories the patterns name, each checked to stay inside ``workdir``;
    ``UnsafePath`` on the first bad one (nothing is uploaded then)."""
    root = workdir.resolve()
    found: dict[str, _Found] = {}
    for pattern in patterns:
        clean = safe_relpath(str(pattern), "artifact path")
        if GLOB_CHARS.search(clean):
            matches = sorted(root.glob(clean))
            rels = [m.relative_to(root).as_posix() for m in matches]
        else:
            rels = [clean] if os.path.lexists(root / clean) else []
        if not rels:
            warnings.append(f"artifact path {pattern!r} matched nothing")
            continue
        for rel in rels:
            target = inside(root, rel, "artifact path")
            if target.is_dir():
                _check_tree(root, target)
            elif not target.is_file():
                raise UnsafePath(f"artifact path {rel!r} is not a regular file or directory")
            found.setdefault(rel, _Found(rel=rel, path=target, is_dir=target.is_dir()))
    return list(found.values())


def _check_tree(root: Path, top: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                real = path.resolve()
                if real != root and root not in real.parents:
                    rel = path.relative_to(root).as_posix()
                    raise UnsafePath(
                        f"artifact path {rel!r} is a symlink leading outside the working directory"
                    )


def cache_key(cache: dict[str, Any], workdir: Path, *, allow_missing: bool) -> str | None:
    """``cache.key``, plus the sha256 of the ``key_paths`` files when given (None when one of
    them is missing and ``allow_missing`` is False)."""
    key = str(cache.get("key") or "").strip()
    key_paths = list(cache.get("key_paths") or [])
    if not key_paths:
        return key or None
    digest = hashlib.sha256()
    for rel in sorted(safe_relpath(str(p), "cache key path") for p in key_paths):
        path = inside(workdir, rel, "cache key path")
        if not path.is_file():
            if not allow_missing:
                return None
            continue
        digest.update(rel.encode() + b"\0" + sha256_of(path).encode() + b"\0")
    return f"{key + '-' if key else ''}{digest.hexdigest()[:40]}"


def make_archive(dest: Path, base: Path, names: list[str], prefix: str | None = None) -> None:
    """A gzip tarball of ``base/<name>`` for each name (stored as ``prefix`` when given);
    symlinks are kept as links (``collect`` already refused those leading out)."""
    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        for name in names:
            tar.add(base / name, arcname=prefix or name, recursive=True)


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``; ``UnsafePath`` (before writing anything) when a member is
    absolute, has ``..``, is a device or a link leading outside ``dest``."""
    dest_s = str(dest.resolve())
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for member in tar:
            try:
                safe_relpath(member.name, "archive member")
                members.append(tarfile.data_filter(member, dest_s))
            except (tarfile.FilterError, UnsafePath) as exc:
                raise UnsafePath(f"archive member {member.name!r} refused: {exc}") from None
        tar.extractall(dest_s, members=members, filter="data")


# Executors that mirror the container's working_dir onto the ant's work directory root.
CONTAINER_METHODS = frozenset({"DOCKER", "KUBERNETES"})


def task_dir(req: TaskRequest, workdir: Path) -> Path:
    """Where a task's relative artifact and cache paths start: its working_dir. A SHELL task runs
    in ``working_dir`` under the work directory; container executors map it to the root."""
    if req.method in CONTAINER_METHODS or not req.spec.get("working_dir"):
        return workdir
    from ants.executors.shell import resolve_working_dir

    try:
        return resolve_working_dir(workdir, req.spec.get("working_dir"))
    except ValueError as exc:
        raise UnsafePath(str(exc)) from exc


def install_artifact_hooks(worker: Any, store: ArtifactStore) -> ArtifactHooks:
    """Attach artifact, cache and log handling to ``worker`` (an ``AntWorker``)."""
    hooks = ArtifactHooks(store, Path(worker.config.work_root))
    # every line a task prints is also kept in the task's log file
    worker.log_listeners.append(lambda req, stream, line: hooks.capture(req.key, stream, line))
    worker.before_execute = hooks.before
    worker.after_execute = hooks.after
    return hooks
