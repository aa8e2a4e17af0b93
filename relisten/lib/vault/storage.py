"""Object storage for the media vault: a local directory or an S3-compatible bucket.

Both backends keep the same small contract (``ObjectStore``), which the vault relies on:

* ``put_file`` makes the whole object visible at once or not at all. A reader never sees a
  half-written recording, and a replaced object is either the old or the new one.
* ``read_range(name, offset, length)`` returns exactly ``length`` bytes, or fewer only where
  the object ends first (like a file's ``read``); ``offset`` at or past the end gives ``b""``.
* Missing objects raise ``ObjectMissing``; ``delete`` of a missing object is not an error.
* Names are ``[A-Za-z0-9/_.-]`` segments separated by ``/``: never absolute, never ``..``,
  no empty segments. The vault uses opaque ids here, so a name never carries clinical text.

The stored bytes are already encrypted by the vault (``stream.py``); this layer never sees a
key or plaintext.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "InvalidObjectName",
    "LocalStore",
    "ObjectMissing",
    "ObjectStore",
    "S3Store",
    "StorageError",
    "validate_name",
]

# Names a person could type into a shell or a URL without quoting, and that mean the same on
# every filesystem and every S3 implementation.
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*")
_PREFIX_RE = re.compile(r"[A-Za-z0-9/_.\-]*")
# S3 keys are limited to 1024 bytes; most filesystems limit one path segment to 255 bytes.
_MAX_NAME = 1024
_MAX_SEGMENT = 255
# Temporary files carry a character that no valid name can contain, so ``names`` never
# lists an unfinished upload and a temp file can never shadow a real object.
_TEMP_MARK = "~"


class StorageError(Exception):
    """The object store cannot do what was asked (configuration, permissions, I/O)."""


class ObjectMissing(StorageError):
    """No object of that name exists."""


class InvalidObjectName(StorageError, ValueError):
    """The name could escape the store or would not mean the same on every backend."""


class ObjectStore(Protocol):
    def put_file(self, name: str, path: Path, *, source_is_final: bool = False) -> None:
        """Store a copy of `path`; visible only once whole. `source_is_final=True` promises the
        caller never writes to `path` again, so a local store may share it instead of copying."""
        ...

    def read_range(self, name: str, offset: int, length: int) -> bytes: ...

    def size(self, name: str) -> int: ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None: ...

    def names(self, prefix: str = "") -> Iterator[str]: ...


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if it is a safe object name, else raise InvalidObjectName."""
    if not isinstance(name, str) or not name:
        raise InvalidObjectName("An object name must be a non-empty string.")
    if len(name) > _MAX_NAME or _NAME_RE.fullmatch(name) is None:
        raise InvalidObjectName(
            "An object name may only contain A-Z, a-z, 0-9, '/', '_', '.', '-', "
            "must not start or end with '/', and must not contain '//'."
        )
    for segment in name.split("/"):
        if segment in (".", ".."):
            raise InvalidObjectName("An object name must not contain '.' or '..' segments.")
        if len(segment) > _MAX_SEGMENT:
            raise InvalidObjectName(f"Each part of an object name is limited to {_MAX_SEGMENT}.")
    return name


def _validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or _PREFIX_RE.fullmatch(prefix) is None:
        raise InvalidObjectName("A name prefix may only contain A-Z, a-z, 0-9, '/', '_', '.', '-'.")
    if prefix.startswith("/") or "//" in prefix:
        raise InvalidObjectName("A name prefix must not start with '/' or contain '//'.")
    if ".." in prefix.split("/"):
        raise InvalidObjectName("A name prefix must not contain '..' segments.")
    return prefix


def _link_synced(source: Path, temp: Path) -> bool:
    """Hard-link the finished file into place when both are on one file system: a multi-GB
    recording then costs no second write (finalize of 1 GiB: ~3 s less). Only for sources the
    caller promised never to write again (`source_is_final`)."""
    try:
        os.link(source, temp)
    except OSError:
        return False  # another file system (or links not allowed): copy instead
    os.chmod(temp, 0o600)
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    return True


def _copy_synced(source: Path, temp: Path) -> None:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1024 * 1024)
        out.flush()
        os.fsync(out.fileno())


def _check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError("offset and length must not be negative")


def _fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename or a new file) across a power cut."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """Objects as files under ``root``: ``root/<name>``.

    ``put_file`` copies into a temporary file in the destination directory, fsyncs it,
    ``os.replace``s it over the name and fsyncs the directory, so after a crash an object
    is either absent, the old version, or the complete new version.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = self.root.resolve()

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*validate_name(name).split("/"))

    def _make_parents(self, target: Path) -> None:
        # Create missing directories one by one and fsync each parent, so a new directory
        # entry survives a crash together with the object inside it.
        missing: list[Path] = []
        current = target.parent
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                if not directory.is_dir():
                    raise StorageError(
                        "An object name collides with an existing object used as a folder."
                    ) from None
            _fsync_dir(directory.parent)

    def put_file(self, name: str, path: Path, *, source_is_final: bool = False) -> None:
        target = self._path(name)
        self._make_parents(target)
        if target.is_dir():
            raise StorageError("An object name collides with an existing folder of objects.")
        temp = target.with_name(f".{target.name}{_TEMP_MARK}{secrets.token_hex(8)}")
        try:
            if not (source_is_final and _link_synced(path, temp)):
                _copy_synced(path, temp)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def _stat_file(self, name: str) -> os.stat_result:
        try:
            info = self._path(name).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(name) from None
        # A folder of objects ("a" when "a/b" exists) is not itself an object.
        if not stat.S_ISREG(info.st_mode):
            raise ObjectMissing(name)
        return info

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        _check_range(offset, length)
        try:
            with open(self._path(name), "rb") as src:
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    raise ObjectMissing(name)
                src.seek(offset)
                parts: list[bytes] = []
                remaining = length
                while remaining > 0:
                    part = src.read(remaining)
                    if not part:
                        break
                    parts.append(part)
                    remaining -= len(part)
                return b"".join(parts)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectMissing(name) from None

    def size(self, name: str) -> int:
        return self._stat_file(name).st_size

    def exists(self, name: str) -> bool:
        try:
            self._stat_file(name)
        except ObjectMissing:
            return False
        return True

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            if path.is_dir():
                return  # a folder of other objects; there is no object of this name
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        _fsync_dir(path.parent)

    def names(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)
        # Walk only the deepest folder the prefix pins down, not the whole store.
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir():
            return
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            relative = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if relative == "." else relative + "/"
            for filename in filenames:
                name = base + filename
                if _TEMP_MARK in filename or not name.startswith(prefix):
                    continue
                try:
                    validate_name(name)
                except InvalidObjectName:
                    continue  # a stray file someone put there by hand
                found.append(name)
        # Sorted like S3's listing (byte order), so both backends answer the same.
        yield from sorted(found)


class S3Store:
    """Objects in an S3 bucket (AWS, MinIO, Ceph RGW, Garage, ...).

    A PUT, including a multipart upload, becomes visible only once complete, and a replaced
    key is read either whole-old or whole-new, which gives ``put_file`` its atomicity. The
    bucket is created on first use if it does not exist.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise StorageError("An S3 bucket name is required.")
        self.bucket = bucket
        self.region = region
        config = Config(
            region_name=region,
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            # Self-hosted S3 servers (MinIO, Garage) usually have no wildcard DNS for
            # bucket subdomains, so address buckets by path whenever an endpoint is set.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # A private session: boto3's default session is not safe to share across threads.
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._bucket_ready = False
        self._lock = threading.Lock()
        # Above this size uploads go in parts (S3's minimum part size is 5 MiB).
        self.multipart_threshold = 16 * 1024 * 1024

    # -- bucket ----------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from botocore.exceptions import ClientError

        with self._lock:
            if self._bucket_ready:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = _error_code(exc)
                if code in ("403", "AccessDenied", "Forbidden"):
                    raise StorageError(
                        f"The S3 bucket {self.bucket!r} exists but these credentials may not "
                        "use it. Check the bucket name and the access key's permissions."
                    ) from exc
                if code not in ("404", "NoSuchBucket", "NotFound"):
                    raise StorageError(
                        f"Could not check the S3 bucket {self.bucket!r} (error {code})."
                    ) from exc
                self._create_bucket()
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        # us-east-1 is the one region that refuses an explicit LocationConstraint.
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("BucketAlreadyOwnedByYou",):
                return  # another worker created it a moment ago
            raise StorageError(
                f"The S3 bucket {self.bucket!r} does not exist and could not be created "
                f"(error {code}). Create it by hand, or give the access key permission "
                "to create buckets."
            ) from exc

    # -- objects ---------------------------------------------------------------------------

    def put_file(self, name: str, path: Path, *, source_is_final: bool = False) -> None:
        from boto3.s3.transfer import TransferConfig

        validate_name(name)
        self._ensure_bucket()
        # upload_file switches to a multipart upload above the threshold; S3 shows the
        # object only after CompleteMultipartUpload, so a reader never sees a partial one.
        transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
        )
        try:
            self._client.upload_file(str(path), self.bucket, name, Config=transfer)
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise StorageError(f"Uploading an object to S3 failed ({type(exc).__name__}).") from exc

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        validate_name(name)
        _check_range(offset, length)
        self._ensure_bucket()
        if length == 0:
            # "bytes=N-(N-1)" is not a valid range, and S3 answers an invalid range with the
            # WHOLE object; so only confirm the object exists.
            self.size(name)
            return b""
        try:
            response = self._client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={offset}-{offset + length - 1}"
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(name) from None
            if code == "InvalidRange":
                # The range starts at or past the end (or the object is empty).
                self.size(name)
                return b""
            raise StorageError(f"Reading an object from S3 failed (error {code}).") from exc
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        if response.get("ContentRange") is None and len(data) > length:
            # A server that ignores Range sends everything; cut out the part we asked for.
            data = data[offset : offset + length]
        return data

    def size(self, name: str) -> int:
        from botocore.exceptions import ClientError

        validate_name(name)
        self._ensure_bucket()
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(name) from None
            raise StorageError(f"Reading an object's size from S3 failed (error {code}).") from exc
        return int(response["ContentLength"])

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except ObjectMissing:
            return False
        return True

    def delete(self, name: str) -> None:
        from botocore.exceptions import ClientError

        validate_name(name)
        self._ensure_bucket()
        try:
            # S3 answers 204 for a missing key too, which makes this idempotent.
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                return
            raise StorageError(f"Deleting an object from S3 failed (error {code}).") from exc

    def names(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)
        self._ensure_bucket()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield str(item["Key"])


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    return str(error.get("Code", "unknown"))
