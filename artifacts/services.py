"""Artifacts on the queen and web side: what the engine asks for (template variables, downloads
for the ant, recording what the ant uploaded), uploads and deletes through the API, signed
download links and expiry.

Objects are written by the ant (``ants.artifact_hooks``) or streamed here from an upload; this
module records their metadata. Store deletions happen after the transaction that removed the
rows commits, so a rolled-back delete never loses an object a row still points to.
"""

import hashlib
import logging
import mimetypes
import tempfile
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ants.artifact_hooks import KIND_CACHE, slug
from ants.artifact_store import CHUNK, UnsafePath, safe_relpath
from ants.protocol import TaskResponse
from artifacts import selectors, storage
from artifacts.models import Artifact
from jobs import fastsql
from jobs.definition.model import TaskSpec
from jobs.models import JobExecution, JobRequest, TaskExecution
from orgs import usage

log = logging.getLogger(__name__)

SIGNING_SALT = "formicary.artifacts.download"
RECORDED_KINDS = {k.value for k in Artifact.Kind}


# -- signed download links ------------------------------------------------------------------------


def download_token(artifact_id: int, ttl_secs: int | None = None) -> str:
    """A token that lets anyone download artifact ``artifact_id`` until it expires; the
    signature covers both the id and the expiry time."""
    ttl = settings.FORMICARY_ARTIFACT_URL_TTL_SECS if ttl_secs is None else ttl_secs
    expires = int(timezone.now().timestamp()) + int(ttl)
    return signing.dumps({"a": artifact_id, "e": expires}, salt=SIGNING_SALT, compress=False)


def token_artifact_id(token: str) -> int:
    """The artifact id a valid, unexpired token names; ``signing.BadSignature`` otherwise."""
    data = signing.loads(token, salt=SIGNING_SALT)
    if not isinstance(data, dict) or not isinstance(data.get("a"), int) or not isinstance(data.get("e"), int):
        raise signing.BadSignature("malformed download token")
    if data["e"] < timezone.now().timestamp():
        raise signing.SignatureExpired("the download link has expired")
    return int(data["a"])


def download_path(artifact_id: int) -> str:
    return f"/api/artifacts/{artifact_id}/download"


def signed_download_url(artifact: Artifact, ttl_secs: int | None = None) -> str:
    base = settings.FORMICARY_BASE_URL.rstrip("/")
    return f"{base}{download_path(artifact.pk)}?sig={download_token(artifact.pk, ttl_secs)}"


# -- the engine's hooks ---------------------------------------------------------------------------


def template_variables(request: JobRequest, execution: JobExecution) -> dict[str, str]:
    """``<task>_ArtifactURL_<n>`` (n from 1, upload order) for the artifacts of the latest run of
    each earlier task of this request and, for a forked child, of its parent's tasks (the child's
    own win). The URLs are signed: a forked job, a script or curl can use them without a token."""
    chain = [request.parent] if request.parent_id and request.parent else []
    return _artifact_urls(
        [selectors.latest_task_artifacts(r.organization_id, r.pk) for r in [*chain, request]]
    )


def template_variables_of_requests(requests: list[JobRequest]) -> dict[int, dict[str, str]]:
    """``template_variables`` of many requests in one query (the dispatcher's batch)."""
    owners = {r.pk: r.organization_id for r in requests}
    parents = {r.parent_id for r in requests if r.parent_id}
    # a forked child lives in its parent's organization
    if parents:
        owners.update(JobRequest.objects.filter(pk__in=parents).values_list("pk", "organization_id"))
    found = selectors.latest_task_artifacts_of_requests(owners)
    return {
        r.pk: _artifact_urls([found.get(r.parent_id, []) if r.parent_id else [], found.get(r.pk, [])])
        for r in requests
    }


def _artifact_urls(runs: list[list[Artifact]]) -> dict[str, str]:
    """Later runs (the child's own) win over earlier ones (its parent's)."""
    out: dict[str, str] = {}
    for artifacts in runs:
        counts: dict[str, int] = {}
        for artifact in artifacts:
            counts[artifact.task_type] = counts.get(artifact.task_type, 0) + 1
            out[f"{artifact.task_type}_ArtifactURL_{counts[artifact.task_type]}"] = signed_download_url(
                artifact
            )
    return out


def _download_entry(artifact: Artifact) -> dict[str, Any]:
    archive = str(artifact.metadata.get("archive") or "")
    return {
        "kind": artifact.kind, "storage_key": artifact.storage_key, "name": artifact.name,
        "path": artifact.name, "archive": archive, "sha256": artifact.sha256, "group": artifact.group,
        "artifact_id": artifact.pk,
    }  # fmt: skip


def downloads_for(request: JobRequest, execution: JobExecution, task: TaskSpec) -> list[dict[str, Any]]:
    """Artifacts the ant must download into the working directory before running ``task``
    (its ``dependencies`` and ``artifact_ids``), then the cache to restore, if any."""
    entries: list[dict[str, Any]] = []
    seen: set[int] = set()
    found: list[Artifact] = []
    if task.dependencies:
        found += selectors.latest_task_artifacts(request.organization_id, request.pk, task.dependencies)
    if task.artifact_ids:
        found += selectors.artifacts_by_ids(request.organization_id, task.artifact_ids)
    for artifact in found:
        if artifact.pk not in seen:
            seen.add(artifact.pk)
            entries.append(_download_entry(artifact))
    cache = task.cache or {}
    if cache.get("paths"):
        static_key = None if cache.get("key_paths") else (str(cache.get("key") or "").strip() or "default")
        found_cache = selectors.cache_for(
            request.organization_id, request.job_type, key=static_key, task_type=task.task_type
        )
        if found_cache is not None:
            entries.append(_download_entry(found_cache))
    return entries


# Longest expires_after kept as given (about 100 years); longer ones (inf included) are cut to it,
# since a datetime past year 9999 cannot be computed or stored.
MAX_EXPIRES_AFTER_SECS = 100 * 365 * 24 * 3600


def _expiry(expires_after: Any, now: datetime) -> datetime | None:
    if isinstance(expires_after, int | float) and not isinstance(expires_after, bool) and expires_after > 0:
        return now + timedelta(seconds=min(float(expires_after), MAX_EXPIRES_AFTER_SECS))
    days = settings.FORMICARY_ARTIFACT_DEFAULT_EXPIRY_DAYS
    return now + timedelta(days=days) if days else None


def _checked_entry(entry: Any, org_prefix: str) -> str | None:
    """Why an ant's artifact entry cannot be recorded, or None when it is fine."""
    if not isinstance(entry, dict):
        return "not an object"
    key, name, kind = entry.get("storage_key"), entry.get("name"), entry.get("kind")
    if kind not in RECORDED_KINDS:
        return f"unknown kind {kind!r}"
    if not isinstance(key, str) or not key.startswith(org_prefix):
        return f"storage key {key!r} is outside the organization's space"
    try:
        safe_relpath(key, "storage key")
        safe_relpath(str(name or ""), "name")
    except UnsafePath as exc:
        return str(exc)
    if not isinstance(entry.get("size", 0), int) or not isinstance(entry.get("sha256", ""), str):
        return "size or sha256 of the wrong type"
    return None


def record_from_response(task: TaskExecution, request: JobRequest, resp: TaskResponse) -> None:
    """Store metadata of the artifacts (and the log) the ant uploaded for this task. Runs in the
    engine's transaction, once per task attempt (the engine applies each result once)."""
    record_from_responses([(task, request, resp)])


def record_from_responses(results: list[tuple[TaskExecution, JobRequest, TaskResponse]]) -> None:
    """``record_from_response`` of many tasks: one INSERT for all but caches (a new cache
    replaces older ones, so each is recorded on its own)."""
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    for task, request, resp in results:
        for entry in resp.artifacts:
            problem = _checked_entry(entry, f"org-{request.organization_id}/")
            if problem:
                log.warning("task %s: artifact entry ignored: %s", task.pk, problem)
                continue
            row = (
                request.organization_id, entry["kind"], str(entry["name"])[:500], str(entry.get("group") or "")[:200],
                request.pk, task.job_execution_id, task.pk, request.job_type, task.task_type, request.user_id,
                settings.FORMICARY_S3_BUCKET, int(entry.get("size") or 0), str(entry.get("sha256") or "")[:64],
                str(entry.get("content_type") or "application/octet-stream")[:200],
                {**(entry.get("metadata") or {}), "attempt": resp.attempt}, _expiry(entry.get("expires_after"), now),
                entry["storage_key"], now,
            )  # fmt: skip
            if entry["kind"] != KIND_CACHE:
                rows.append(row)
            elif not Artifact.objects.filter(storage_key=entry["storage_key"]).exists():
                cache = Artifact(**dict(zip(_RECORDED, row, strict=True)))
                cache.save()
                _drop_older_caches(cache)
    # a key recorded before (an answer applied twice) keeps its row
    fastsql.insert_rows(Artifact, _RECORDED, rows, ignore_conflicts=True)


# the columns an ant's answer gives an artifact row (one INSERT of all a read's answers)
_RECORDED = (
    "organization_id", "kind", "name", "group", "job_request_id", "job_execution_id", "task_execution_id",
    "job_type", "task_type", "user_id", "bucket", "size", "sha256", "content_type", "metadata", "expires_at",
    "storage_key", "created_at",
)  # fmt: skip


def _drop_older_caches(cache: Artifact) -> None:
    """A newer cache of the same key replaces the older ones."""
    older = Artifact.objects.filter(
        organization_id=cache.organization_id, kind=Artifact.Kind.CACHE, job_type=cache.job_type,
        group=cache.group, id__lt=cache.pk,
    )  # fmt: skip
    _delete_rows_then_objects(older)


# -- uploads, deletes, expiry ---------------------------------------------------------------------


def _delete_rows_then_objects(qs: Any) -> int:
    keys = list(qs.values_list("storage_key", flat=True))
    if not keys:
        return 0
    Artifact.objects.filter(storage_key__in=keys).delete()

    def remove() -> None:
        for key in keys:
            try:
                storage.delete(key)
            except Exception:
                log.exception("deleting stored object %s failed", key)

    transaction.on_commit(remove)
    return len(keys)


def artifact_delete(*, artifact: Artifact) -> None:
    with transaction.atomic():
        _delete_rows_then_objects(Artifact.objects.filter(pk=artifact.pk))


def artifacts_delete_of_requests(request_ids: list[int], kinds: Iterable[str]) -> int:
    """Delete the ``kinds`` artifacts of these requests (retention): the rows in the caller's
    transaction, the stored objects once it commits."""
    return _delete_rows_then_objects(
        Artifact.objects.filter(job_request_id__in=request_ids, kind__in=list(kinds))
    )


def artifacts_expire(
    *, now: datetime | None = None, organization_id: int | None = None, limit: int = 1000
) -> int:
    """Delete artifacts whose ``expires_at`` has passed (rows, then their stored objects)."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                selectors.expired(now, organization_id).order_by("id").values_list("pk", flat=True)[:limit]
            )
            if not ids:
                return total
            total += _delete_rows_then_objects(Artifact.objects.filter(pk__in=ids))


def _upload_target(org_id: int, job_request_id: int | None) -> JobRequest | None:
    if job_request_id is None:
        return None
    found = JobRequest.objects.filter(organization_id=org_id, pk=job_request_id).first()
    if found is None:
        # the same answer whether it belongs to another organization or does not exist
        raise ValidationError(
            {"job_request_id": f"job request {job_request_id} does not exist in your organization"}
        )
    return found


def check_upload(
    *, org_id: int, name: str, job_request_id: int | None, size: int = 0
) -> tuple[str, JobRequest | None]:
    """Validate an upload before a byte is stored: a safe relative name, a request of ``org_id``,
    room for ``size`` bytes (when known) in the plan's storage quota."""
    try:
        clean = safe_relpath(name, "name")
    except UnsafePath as exc:
        raise ValidationError({"name": str(exc)}) from None
    if len(clean) > 500:
        raise ValidationError({"name": "must be at most 500 characters"})
    target = _upload_target(org_id, job_request_id)
    usage.check_storage(org_id, size)
    return clean, target


def artifact_upload(
    *, org_id: int, user: Any, name: str, chunks: Iterable[bytes], job_request_id: int | None = None,
    task_type: str = "", content_type: str = "", expires_after: float | None = None,
) -> Artifact:  # fmt: skip
    """Store an uploaded file (streamed from ``chunks`` through a temporary file, hashed on the
    way) and record it as an UPLOAD artifact."""
    clean, job_request = check_upload(org_id=org_id, name=name, job_request_id=job_request_id)
    folder = str(job_request.pk) if job_request else "uploads"
    key = f"org-{org_id}/{folder}/{slug(task_type) if task_type else 'upload'}/{uuid.uuid4().hex}/{clean}"
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as tmp:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            tmp.write(chunk)
        usage.check_storage(org_id, size)  # the size streamed, whatever was announced
        tmp.seek(0)
        storage.save_file(key, tmp)
    try:
        return Artifact.objects.create(
            organization_id=org_id, kind=Artifact.Kind.UPLOAD, name=clean, job_request=job_request,
            job_execution_id=job_request.last_execution_id if job_request else None,
            job_type=job_request.job_type if job_request else "", task_type=task_type[:200],
            user=user if getattr(user, "pk", None) else None, bucket=settings.FORMICARY_S3_BUCKET,
            storage_key=key, size=size, sha256=digest.hexdigest(),
            content_type=(content_type or mimetypes.guess_type(clean)[0] or "application/octet-stream")[:200],
            expires_at=_expiry(expires_after, timezone.now()),
        )  # fmt: skip
    except Exception:
        storage.delete(key)
        raise


def file_chunks(fileobj: BinaryIO, size: int = CHUNK) -> Iterable[bytes]:
    while chunk := fileobj.read(size):
        yield chunk
