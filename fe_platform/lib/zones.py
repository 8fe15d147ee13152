"""A partition of the validated and quarantine zones, committed as one step.

A partition's datasets are versions: each version is a folder of Parquet parts, one part per delivery,
in both zones, and the partition's manifest names the current version and its parts:

    validated/<feed>/<partition>/<version>/<sha256[:16]>.parquet
    quarantine/<feed>/<partition>/<version>/<sha256[:16]>.parquet
    validated/<feed>/<partition>/_manifest.json        <- written last: the commit

Readers, checks and warehouse loads read through the manifest, so they see the validated rows and the
quarantined rows of the same deliveries, never a mix, and a crash before the manifest is written leaves
the previous version whole and readable (a re-run writes the same part names again and commits). A
version folder is also what an external engine reads (a Glue partition's location, a Redshift COPY
prefix). `snapshot` feeds commit each delivery as a new version; `append` feeds add a delivery's part
to the current version, and a re-run of the partition writes a new version with every part. The current
and the previous version are kept (a reader that just read the old manifest can finish); older versions
are removed at the next commit.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from fe_platform.lib.lake import Lake, LakeObject

MANIFEST = "_manifest.json"
ZONES = ("validated", "quarantine")


@dataclass(frozen=True)
class Part:
    """One delivery's rows in a partition version."""

    landing_key: str
    sha256: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    ingested_at: str  # ISO, UTC: the rows' `_ingested_at`
    raw_key: str
    rule_counts: dict[str, int] = field(default_factory=dict)
    drift_columns: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.sha256[:16]}.parquet"


@dataclass(frozen=True)
class PartitionVersion:
    feed: str
    partition: str
    version: str
    parts: tuple[Part, ...]
    committed_at: str
    previous_version: str | None = None

    def folder(self, zone: str) -> str:
        return version_folder(zone, self.feed, self.partition, self.version)

    def keys(self, zone: str) -> list[str]:
        return [self.folder(zone) + part.name for part in self.parts]

    @property
    def rows_in(self) -> int:
        return sum(p.rows_in for p in self.parts)

    @property
    def rows_valid(self) -> int:
        return sum(p.rows_valid for p in self.parts)

    @property
    def rows_quarantined(self) -> int:
        return sum(p.rows_quarantined for p in self.parts)

    @property
    def rule_counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in self.parts:
            for rule, rows in part.rule_counts.items():
                total[rule] = total.get(rule, 0) + rows
        return dict(sorted(total.items()))

    @property
    def drift_columns(self) -> list[str]:
        return sorted({c for p in self.parts for c in p.drift_columns})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> PartitionVersion:
        data = json.loads(text)
        data["parts"] = tuple(Part(**p) for p in data["parts"])
        return cls(**data)


def partition_folder(zone: str, feed: str, partition: str) -> str:
    return f"{zone}/{feed}/{partition}/"


def version_folder(zone: str, feed: str, partition: str, version: str) -> str:
    return f"{zone}/{feed}/{partition}/{version}/"


def manifest_key(feed: str, partition: str) -> str:
    return partition_folder("validated", feed, partition) + MANIFEST


def new_version(now: datetime | None = None) -> str:
    """A version name that sorts by commit time."""
    return f"v{(now or datetime.now(UTC)):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def current_version(lake: Lake, feed: str, partition: str) -> PartitionVersion | None:
    key = manifest_key(feed, partition)
    if not lake.exists(key):
        return None
    return PartitionVersion.from_json(lake.read_bytes(key).decode())


def committed_manifests(lake: Lake, feed: str) -> list[LakeObject]:
    """The manifests of a feed's committed partitions, in partition order."""
    return sorted((o for o in lake.list(f"validated/{feed}/") if o.key.endswith("/" + MANIFEST)), key=lambda o: o.key)


def committed_partitions(lake: Lake, feed: str) -> list[str]:
    """Partitions of a feed with a committed version, in order."""
    return [o.key.split("/")[2] for o in committed_manifests(lake, feed)]


def commit(lake: Lake, version: PartitionVersion) -> None:
    """Make `version` (its parts already written) the partition's current version, then drop the versions
    older than the one it replaces."""
    lake.put_bytes(version.to_json().encode(), manifest_key(version.feed, version.partition))
    keep = {version.version, version.previous_version}
    for zone in ZONES:
        stale = [o.key for o in lake.list(partition_folder(zone, version.feed, version.partition))
                 if o.key.count("/") == 4 and o.key.split("/")[3] not in keep]
        lake.delete(stale)


def read_partition(lake: Lake, zone: str, feed: str, partition: str, columns: list[str] | None = None):
    """A committed partition's rows of one zone as one Arrow table (for small partitions: a check or a load
    streams `PartitionVersion.keys` instead). Empty when the partition has no committed version."""
    import pyarrow as pa

    version = current_version(lake, feed, partition)
    tables = [lake.read_parquet(key, columns=columns) for key in version.keys(zone)] if version else []
    if not tables:
        from fe_platform.lib.feeds import FEEDS
        from fe_platform.lib.validation import quarantine_schema

        schema = FEEDS[feed].validated_schema() if zone == "validated" else quarantine_schema(FEEDS[feed])
        return schema.empty_table() if columns is None else schema.empty_table().select(columns)
    return pa.concat_tables(tables)
