"""One interface over the lake: a local folder or an S3 prefix.

Keys are `/`-separated paths below the lake root (`landing/iqvia_rx/RXDYN_...txt`); a key with an
empty, `.` or `..` segment is refused, so no key reaches outside the root. Every write publishes
atomically: a reader sees the previous object or the new one, never a partial one, and a failed write
leaves the previous version in place. Locally that is a temporary file renamed over the target; on S3
a single PUT (or a multipart upload, which S3 only makes visible once complete), with SSE-KMS when a
key is set. Locally, only regular files are objects: a symbolic link or anything else is listed as
such and never opened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

HASH_CHUNK = 4 << 20
TEMP_PREFIX = ".tmp-"


class LakeKeyError(ValueError):
    """A key that would leave its zone (`..`, an absolute path, an empty segment)."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise LakeKeyError(f"not a lake key: {key!r}")
    return key


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int
    modified: datetime
    version: str = ""  # what changes when the bytes may have: the ETag on S3, the mtime locally
    regular: bool = True  # a regular file (always, on S3); locally a symlink or a device is not

    @property
    def fingerprint(self) -> str:
        """Size and version: equal fingerprints mean the same bytes, without reading them."""
        return hashlib.sha256(f"{self.size}:{self.version}".encode()).hexdigest()[:16]


class Lake:
    """Base: the operations the platform needs; subclasses say where bytes live."""

    root: str

    @property
    def filesystem(self) -> pafs.FileSystem:
        raise NotImplementedError

    def path(self, key: str) -> str:
        """The path of `key` in `self.filesystem` (for pyarrow readers)."""
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[LakeObject]:
        """Objects below `prefix`, in key order, only those after `start_after` when given."""
        raise NotImplementedError

    def put_file(self, local_path: Path, key: str) -> None:
        raise NotImplementedError

    def copy(self, src_key: str, dst_key: str) -> None:
        raise NotImplementedError

    def delete(self, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def writing(self, name: str):
        """Held while one writer reads and replaces a partition's manifest (`zones.py`). On S3 the run queue
        keeps a feed's runs one at a time; a local lake may also be written by `fe-platform run` and the daemon."""
        return nullcontext()

    def exists(self, key: str) -> bool:
        import pyarrow.fs as pafs

        return self.filesystem.get_file_info(self.path(key)).type == pafs.FileType.File

    def open(self, key: str) -> BinaryIO:
        return self.filesystem.open_input_stream(self.path(key), compression=None)  # bytes as stored

    def read_parquet(self, key: str, columns: list[str] | None = None,
                     schema: pa.Schema | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        with self.filesystem.open_input_file(self.path(key)) as f:
            return pq.read_table(f, columns=columns, schema=schema)

    def parquet_file(self, key: str):
        """A `pyarrow.parquet.ParquetFile` (metadata, row groups, batches: nothing read whole)."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.filesystem.open_input_file(self.path(key)))

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def put_bytes(self, data: bytes, key: str) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            self.put_file(Path(tmp.name), key)
        finally:
            os.unlink(tmp.name)

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


class LocalLake(Lake):
    def __init__(self, root: str | Path):
        self.root = str(Path(root).resolve())

    @cached_property
    def filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem()

    def path(self, key: str) -> str:
        path = os.path.join(self.root, *check_key(key.rstrip("/")).split("/"))
        return path + os.sep if key.endswith("/") else path

    def uri(self, key: str) -> str:
        return self.path(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[LakeObject]:
        base = Path(self.root, *prefix.strip("/").split("/"))
        if not base.is_dir() or base.is_symlink():
            return
        found = []
        for dirpath, _, filenames in os.walk(base):  # (os.walk does not descend into linked folders)
            for name in filenames:
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if name.startswith(TEMP_PREFIX) or (start_after is not None and key <= start_after):
                    continue
                info = full.lstat()
                found.append(LakeObject(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC),
                                        str(info.st_mtime_ns), stat.S_ISREG(info.st_mode)))
        yield from sorted(found, key=lambda o: o.key)

    def open(self, key: str) -> BinaryIO:
        # O_NOFOLLOW: a landing entry swapped for a link after it was listed is still not followed.
        fd = os.open(self._inside(key), os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def _inside(self, key: str) -> str:
        """The key's path, refused when a folder on the way is a link that leads out of the lake."""
        path = self.path(key)
        if not os.path.realpath(os.path.dirname(path)).startswith(self.root + os.sep):
            raise LakeKeyError(f"{key}: its folder leads outside the lake")
        return path

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        target = Path(self._inside(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
        os.close(fd)
        return target, Path(tmp)

    def put_file(self, local_path: Path, key: str) -> None:
        target, tmp = self._atomic_target(key)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, src_key: str, dst_key: str) -> None:
        target, tmp = self._atomic_target(dst_key)
        try:
            with self.open(src_key) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, HASH_CHUNK)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            Path(self._inside(key)).unlink(missing_ok=True)

    def writing(self, name: str):
        from fe_platform.lib.locks import file_lock

        return file_lock(Path(self.root, ".locks", f"{name}.lock"), f"{name} in the lake {self.root}",
                         wait_seconds=3600)

    def leftovers(self, older_than: datetime) -> list[Path]:
        """Temporary files of writes that never finished (a killed process), older than `older_than`."""
        found = []
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                full = Path(dirpath, name)
                if name.startswith(TEMP_PREFIX) and full.lstat().st_mtime < older_than.timestamp():
                    found.append(full)
        return found


class S3Lake(Lake):
    def __init__(self, bucket: str, prefix: str = "", region: str | None = None,
                 endpoint_url: str | None = None, kms_key_id: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.region = region
        self.endpoint_url = endpoint_url
        self.kms_key_id = kms_key_id

    @cached_property
    def client(self):
        import boto3

        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url)

    @cached_property
    def filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        fs_args: dict = {"region": self.region}
        if self.endpoint_url:
            scheme, _, host = self.endpoint_url.partition("://")
            fs_args.update(endpoint_override=host, scheme=scheme)
        return pafs.S3FileSystem(**fs_args)

    def object_key(self, key: str) -> str:
        key = check_key(key.rstrip("/")) + ("/" if key.endswith("/") else "")
        return f"{self.prefix}/{key}" if self.prefix else key

    def path(self, key: str) -> str:
        return f"{self.bucket}/{self.object_key(key)}"

    def uri(self, key: str) -> str:
        return f"s3://{self.path(key)}"

    def _lake_key(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1:] if self.prefix else object_key

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[LakeObject]:
        args = {"Bucket": self.bucket, "Prefix": self.object_key(prefix.rstrip("/") + "/")}
        if start_after is not None:
            # S3 lists keys after StartAfter, so a tick never pages through what it has seen.
            args["StartAfter"] = self.object_key(start_after)
        for page in self.client.get_paginator("list_objects_v2").paginate(**args):
            for obj in page.get("Contents", []):
                yield LakeObject(self._lake_key(obj["Key"]), obj["Size"], obj["LastModified"],
                                 obj.get("ETag", "").strip('"'))

    def _encryption(self) -> dict:
        if not self.kms_key_id:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}

    def put_file(self, local_path: Path, key: str) -> None:
        self.client.upload_file(str(local_path), self.bucket, self.object_key(key),
                                ExtraArgs=self._encryption() or None)

    def copy(self, src_key: str, dst_key: str) -> None:
        self.client.copy({"Bucket": self.bucket, "Key": self.object_key(src_key)}, self.bucket,
                         self.object_key(dst_key), ExtraArgs=self._encryption() or None)

    def delete(self, keys: Iterable[str]) -> None:
        objects = [{"Key": self.object_key(k)} for k in keys]
        for start in range(0, len(objects), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects[start:start + 1000]})


def lake_at(root: str, region: str | None = None, endpoint_url: str | None = None,
            kms_key_id: str | None = None) -> Lake:
    """The lake at `root`: a folder, or `s3://bucket/prefix`."""
    if not root.startswith("s3://"):
        return LocalLake(root)
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    return S3Lake(bucket, prefix, region, endpoint_url, kms_key_id)
