"""An alert: what happened, where, the numbers and a link; who it is for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

# Every kind of the contract and its severity.
KINDS = {
    "check_failed": "error",
    "run_failed": "error",
    "delivery_rejected": "warn",
    "feed_late": "warn",
    "sensor_failed": "error",
    "digest": "info",
}


def dedupe_key(kind: str, asset: str | None, partition: str | None, check: str | None) -> str:
    """One failure: the same kind, asset, partition and check."""
    return "|".join([kind, asset or "", partition or "", check or ""])


@dataclass(frozen=True)
class Finding:
    """Something to tell, before it is routed: the owners of what it is about decide who hears of it."""

    kind: str
    subject: str
    text: str
    owners: tuple[str, ...] = ()  # the asset's owners: `team:<name>` and email addresses
    asset: str | None = None
    partition: str | None = None
    check: str | None = None
    link: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.kind, self.asset, self.partition, self.check)


@dataclass(frozen=True)
class Alert:
    """A finding addressed to one team; its fields are those of an outbox file."""

    kind: str
    team: str
    to: tuple[str, ...]
    asset: str | None
    partition: str | None
    check: str | None
    subject: str
    text: str
    link: str | None
    created_at: datetime

    @property
    def severity(self) -> str:
        return KINDS[self.kind]

    def as_dict(self) -> dict:
        return {
            "kind": self.kind, "severity": self.severity, "team": self.team, "to": list(self.to),
            "asset": self.asset, "partition": self.partition, "check": self.check, "subject": self.subject,
            "text": self.text, "link": self.link, "created_at": self.created_at.isoformat(),
        }

    @property
    def body(self) -> str:
        """The message as a person reads it: the text, then the link."""
        return self.text + (f"\n\n{self.link}" if self.link else "") + "\n"
