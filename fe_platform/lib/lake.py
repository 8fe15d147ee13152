"""One interface over the lake: a local folder or an S3 prefix.

Keys are `/`-separated paths below the lake root (`landing/iqvia_rx/RXDYN_...txt`).
Every write publishes atomically: a reader sees the previous object or the new one,
never a partial one, and a failed write leaves the previous version in place. Locally
that is a temporary file renamed over the target; on S3 a single PUT (or a multipart
upload, which S3 only makes visible once complete), with SSE-KMS when a key is set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fe_platform.settings import Settings

HASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int
    modified: datetime


class Lake:
    """Base: the operations the platform needs; subclasses say where bytes live."""

    root: str
    filesystem: pafs.FileSystem

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

    def delete_prefix(self, prefix: str) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        info = self.filesystem.get_file_info(self.path(key))
        return info.type == pafs.FileType.File

    def open(self, key: str) -> BinaryIO:
        return self.filesystem.open_input_stream(self.path(key), compression=None)  # bytes as stored

    def read_parquet(self, key: str, columns: list[str] | None = None,
                     schema: pa.Schema | None = None) -> pa.Table:
        with self.filesystem.open_input_file(self.path(key)) as f:
            return pq.read_table(f, columns=columns, schema=schema)

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
        self.filesystem = pafs.LocalFileSystem()

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def uri(self, key: str) -> str:
        return self.path(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[LakeObject]:
        base = Path(self.path(prefix))
        if not base.is_dir():
            return
        found = []
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if name.startswith(".tmp-") or (start_after is not None and key <= start_after):
                    continue
                stat = full.stat()
                found.append(LakeObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        yield from sorted(found, key=lambda o: o.key)

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        target = Path(self.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
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
        self.put_file(Path(self.path(src_key)), dst_key)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)


class S3Lake(Lake):
    def __init__(self, bucket: str, prefix: str = "", region: str | None = None,
                 endpoint_url: str | None = None, kms_key_id: str | None = None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.kms_key_id = kms_key_id
        self.client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
        fs_args: dict = {"region": region}
        if endpoint_url:
            scheme, _, host = endpoint_url.partition("://")
            fs_args.update(endpoint_override=host, scheme=scheme)
        self.filesystem = pafs.S3FileSystem(**fs_args)

    def object_key(self, key: str) -> str:
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
                yield LakeObject(self._lake_key(obj["Key"]), obj["Size"], obj["LastModified"])

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

    def delete_prefix(self, prefix: str) -> None:
        keys = [{"Key": self.object_key(o.key)} for o in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000]})


def lake_from_settings(s: Settings) -> Lake:
    if not s.lake_is_s3:
        return LocalLake(s.lake_root)
    bucket, _, prefix = s.lake_root.removeprefix("s3://").partition("/")
    return S3Lake(bucket, prefix, s.aws_region, s.s3_endpoint_url, s.kms_key_id)
