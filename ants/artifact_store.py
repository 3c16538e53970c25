"""The object store as the ant sees it: a local folder or an S3 bucket (AWS, MinIO, moto).

The ant has no database: it reads and writes objects here directly and reports their metadata to
the queen. Every transfer streams between a file on disk and the store in bounded chunks (S3
multipart above ``MULTIPART_THRESHOLD``), so an object of any size never sits whole in memory;
the sha256 is computed while reading.

Keys are relative ``a/b/c`` paths; a key with ``..``, an empty or absolute part is refused
(``UnsafePath``) before anything is touched. The S3 prefix (``FORMICARY_S3_PREFIX``) is part of
the store, not of the key, so a key means the same object on every backend of one deployment.

Configuration (``store_from_config`` / ``store_from_env``) uses the same environment variables as
the Django settings, so one deployment config serves the queen, the web server and the ants:
FORMICARY_S3_BUCKET (S3 when set, else the local folder), FORMICARY_S3_ENDPOINT,
FORMICARY_S3_PREFIX, FORMICARY_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and for the
local folder FORMICARY_ARTIFACTS_DIR (default ``$FORMICARY_DATA_DIR/artifacts``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

CHUNK = 1024 * 1024
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024


class UnsafePath(ValueError):
    """A key, name or path that could reach outside its root (``..``, absolute, escaping link)."""


MAX_NAME_PART_BYTES = 255


def safe_relpath(name: str, what: str = "path") -> str:
    """``name`` as a clean relative POSIX path; ``UnsafePath`` when it is absolute or has ``..``."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath(f"{what} must not be empty")
    if "\x00" in name or "\\" in name:
        raise UnsafePath(f"{what} {name!r} must not contain NUL or backslash characters")
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(f"{what} {name!r} must be relative, not absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"{what} {name!r} must not contain '..'")
    if not parts:
        raise UnsafePath(f"{what} {name!r} names no file")
    for part in parts:
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            raise UnsafePath(f"{what} {name!r} is not Unicode text (a lone surrogate)") from None
        if size > MAX_NAME_PART_BYTES:  # the file systems' limit: longer names fail to open
            raise UnsafePath(
                f"{what}: the part {part[:40]!r}... is {size} bytes, at most {MAX_NAME_PART_BYTES}"
            )
    return "/".join(parts)


def inside(root: Path, rel: str, what: str = "path") -> Path:
    """``root/rel`` after resolving symlinks; ``UnsafePath`` when it lands outside ``root``."""
    base = root.resolve()
    target = (base / safe_relpath(rel, what)).resolve()
    if target != base and base not in target.parents:
        raise UnsafePath(f"{what} {rel!r} leads outside the working directory (through a symlink)")
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


class ArtifactStore(Protocol):
    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> Stored: ...

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> Stored:
        """A small object already in memory (no temporary file, no second read)."""
        ...

    def get_file(self, key: str, dest: Path) -> int: ...

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


def _copy_hashing(src: BinaryIO, dst: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class LocalStore:
    """Objects as files under ``root`` (the standalone default, or a shared folder)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        return self.root / safe_relpath(key, "storage key")

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> Stored:
        with open(path, "rb") as src:
            return self._put(key, src)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> Stored:
        target = self.path_of(key)
        # a new key is nobody's yet (it is handed out after this returns): written in place,
        # without the scratch file and rename that keep a known object whole for its readers
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                fd = os.open(target, flags, 0o644)
            except FileNotFoundError:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, flags, 0o644)
        except FileExistsError:
            return self._put(key, io.BytesIO(data))
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return Stored(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def _put(self, key: str, src: BinaryIO) -> Stored:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # written beside the target and renamed: a reader never sees half an object
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as dst:
                size, sha = _copy_hashing(src, dst)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Stored(key=key, size=size, sha256=sha)

    def get_file(self, key: str, dest: Path) -> int:
        with open(self.path_of(key), "rb") as src, open(dest, "wb") as dst:
            size, _ = _copy_hashing(src, dst)
        return size

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with open(self.path_of(key), "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        path.unlink(missing_ok=True)
        # drop the now-empty per-object folders (never the root itself)
        parent = path.parent
        root = self.root.resolve()
        while parent.resolve() != root and root in parent.resolve().parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class S3Store:
    """Objects in an S3 bucket through boto3; multipart transfers with bounded buffers."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}),
        )
        self.transfer = transfer_config()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def object_key(self, key: str) -> str:
        key = safe_relpath(key, "storage key")
        return f"{self.prefix}/{key}" if self.prefix else key

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:
            self.client.create_bucket(Bucket=self.bucket)

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> Stored:
        sha = sha256_of(path)  # a first pass over the local file: hashing needs no memory
        self.client.upload_file(
            str(path), self.bucket, self.object_key(key), Config=self.transfer,
            ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha}},
        )  # fmt: skip
        return Stored(key=key, size=path.stat().st_size, sha256=sha)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> Stored:
        sha = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            Bucket=self.bucket, Key=self.object_key(key), Body=data, ContentType=content_type,
            Metadata={"sha256": sha},
        )  # fmt: skip
        return Stored(key=key, size=len(data), sha256=sha)

    def get_file(self, key: str, dest: Path) -> int:
        self.client.download_file(self.bucket, self.object_key(key), str(dest), Config=self.transfer)
        return dest.stat().st_size

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))


def transfer_config() -> Any:
    """boto3 transfer settings that bound memory whatever the object size: 8 MB parts, two in
    flight, and at most two read ahead from a non-seekable source (boto3 would buffer ten)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNK,
        max_concurrency=2,
        max_io_queue=16,
        io_chunksize=256 * 1024,
    )
    config.max_in_memory_upload_chunks = 2  # not a constructor argument of boto3's subclass
    return config


def store_from_config(config: Mapping[str, Any]) -> LocalStore | S3Store:
    """``{"bucket", "prefix", "endpoint", "region", "access_key", "secret_key"}`` for S3 (when
    ``bucket`` is set), else ``{"root": folder}``."""
    if config.get("bucket"):
        return S3Store(
            str(config["bucket"]), prefix=str(config.get("prefix") or ""), endpoint=config.get("endpoint"),
            region=config.get("region"), access_key=config.get("access_key"),
            secret_key=config.get("secret_key"),
        )  # fmt: skip
    root = config.get("root")
    if not root:
        raise ValueError("artifact store: set FORMICARY_S3_BUCKET or a local folder (root)")
    return LocalStore(root)


def config_from_settings(settings: Any) -> dict[str, Any]:
    """The store's config from a Django-like settings object (the deployment's FORMICARY_S3_* or
    MEDIA_ROOT): the same store the web side uses, read without importing Django here."""
    return {
        "bucket": getattr(settings, "FORMICARY_S3_BUCKET", ""),
        "prefix": getattr(settings, "FORMICARY_S3_PREFIX", ""),
        "endpoint": getattr(settings, "FORMICARY_S3_ENDPOINT", ""),
        "region": getattr(settings, "FORMICARY_S3_REGION", ""),
        "access_key": getattr(settings, "AWS_ACCESS_KEY_ID", ""),
        "secret_key": getattr(settings, "AWS_SECRET_ACCESS_KEY", ""),
        "root": str(settings.MEDIA_ROOT),
    }


def config_from_env(environ: Mapping[str, str] | None = None, default_root: str | Path | None = None) -> dict:
    env = os.environ if environ is None else environ
    data_dir = env.get("FORMICARY_DATA_DIR") or "data"
    return {
        "bucket": env.get("FORMICARY_S3_BUCKET", ""),
        "prefix": env.get("FORMICARY_S3_PREFIX", ""),
        "endpoint": env.get("FORMICARY_S3_ENDPOINT", ""),
        "region": env.get("FORMICARY_S3_REGION", ""),
        "access_key": env.get("AWS_ACCESS_KEY_ID", ""),
        "secret_key": env.get("AWS_SECRET_ACCESS_KEY", ""),
        "root": env.get("FORMICARY_ARTIFACTS_DIR") or str(default_root or Path(data_dir) / "artifacts"),
    }


def store_from_env(environ: Mapping[str, str] | None = None, default_root: str | Path | None = None):  # type: ignore[no-untyped-def]
    return store_from_config(config_from_env(environ, default_root))
