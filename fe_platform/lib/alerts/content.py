"""What each kind of alert says: plain text built from plain values.

An alert carries rule names, counts, rates, keys and file names, never a cell value: of a check's metadata
only numbers and {name: number} tables whose names are identifiers (rule or column names) are shown, so a
check's samples (which hold cells of the rows they show) never reach an alert. Free text from elsewhere
(a rejection's reason) is scrubbed of anything that looks like an email address or a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote, urlencode

from fe_platform.lib.alerts.model import Finding

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,80}")  # a rule or column name
METADATA_NAME = re.compile(r"[A-Za-z_][\w./-]{0,120}")  # names a check's code gives, like dagster/row_count
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"(\+?\d[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}")
PREFIX = "[FE Platform]"


def scrub(text: str) -> str:
    return PHONE.sub("[number]", EMAIL.sub("[email]", text))


@dataclass(frozen=True)
class Links:
    """Links into the Dagster UI."""

    base: str

    def asset(self, path: Sequence[str], partition: str | None = None, view: str | None = None) -> str:
        query = {k: v for k, v in (("view", view), ("partition", partition)) if v}
        return (f"{self.base}/assets/{'/'.join(quote(p, safe='') for p in path)}"
                + (f"?{urlencode(query)}" if query else ""))

    def run(self, run_id: str) -> str:
        return f"{self.base}/runs/{quote(run_id, safe='')}"

    def instigator(self, location: str, kind: str, name: str) -> str:
        return f"{self.base}/locations/{quote(location, safe='')}/{kind}s/{quote(name, safe='')}"


def _number(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return None


def safe_numbers(metadata: Mapping[str, object]) -> list[str]:
    """`name: number` and `name: key n, key n` lines of a check's metadata; everything else is left out."""
    lines = []
    for name, value in sorted(metadata.items()):
        if not METADATA_NAME.fullmatch(name):
            continue
        if (shown := _number(value)) is not None:
            lines.append(f"{name}: {shown}")
        elif isinstance(value, Mapping) and value and all(
                isinstance(k, str) and IDENTIFIER.fullmatch(k) and _number(v) is not None for k, v in value.items()):
            lines.append(f"{name}: " + ", ".join(f"{k} {_number(v)}" for k, v in sorted(value.items())))
    return lines


def check_failed(*, asset: str, asset_path: Sequence[str], owners: Sequence[str], check: str, partition: str | None,
                 severity: str, metadata: Mapping[str, object], description: str | None, delivery: str | None,
                 rows_in: int | None, run_id: str | None, links: Links, at: datetime) -> Finding:
    where = f"{asset}" + (f" [{partition}]" if partition else "")
    lines = [f"The check {check} on {where} failed with severity {severity}."]
    if description:
        lines.append(f"What it checks: {description}")
    if delivery:
        lines.append(f"Delivery: {delivery}" + (f" ({rows_in:,} rows)" if rows_in is not None else ""))
    numbers = safe_numbers(metadata)
    if numbers:
        lines += ["Numbers:"] + [f"  {line}" for line in numbers]
    if run_id:
        lines.append(f"Run: {links.run(run_id)}")
    return Finding("check_failed", f"{PREFIX} check failed: {check} on {where}", "\n".join(lines),
                   owners=tuple(owners), asset=asset, partition=partition, check=check,
                   link=links.asset(asset_path, partition, view="checks"), created_at=at)


def run_failed(*, job: str, identity: str, run_id: str, status: str, partition: str | None,
               assets: Sequence[str], owners: Sequence[str], failed_steps: Sequence[tuple[str, str]],
               links: Links, at: datetime) -> Finding:
    where = job + (f" [{partition}]" if partition else "")
    lines = [f"The run {run_id[:8]} of {where} ended {status.lower()}."]
    if assets:
        shown = ", ".join(assets[:5]) + (f" and {len(assets) - 5} more" if len(assets) > 5 else "")
        lines.append(f"Assets: {shown}")
    for step, error in failed_steps[:5]:
        lines.append(f"Failed step: {step} ({error})")
    lines.append("The run's log in the Dagster UI has the details.")
    return Finding("run_failed", f"{PREFIX} run {status.lower()}: {where}", "\n".join(lines), owners=tuple(owners),
                   asset=identity, partition=partition, check=None, link=links.run(run_id), created_at=at)


def delivery_rejected(*, feed: str, asset: str, asset_path: Sequence[str], owners: Sequence[str], file_name: str,
                      landing_key: str, sha256: str, partition: str | None, reason: str | None, links: Links,
                      at: datetime) -> Finding:
    lines = [f"The {feed} delivery {file_name} was rejected whole: nothing of it was loaded.",
             f"Why: {scrub(reason or 'no reason recorded')}",
             f"Landing key: {landing_key} (sha256 {sha256[:12]})",
             f"The file and its error report are kept under rejected/{feed}/."]
    return Finding("delivery_rejected", f"{PREFIX} delivery rejected: {feed} {file_name}", "\n".join(lines),
                   owners=tuple(owners), asset=asset, partition=partition, check=f"{file_name}@{sha256[:12]}",
                   link=links.asset(asset_path), created_at=at)


def feed_late(*, asset: str, asset_path: Sequence[str], owners: Sequence[str], what: str, expectation: str,
              last_materialized: datetime, now: datetime, links: Links) -> Finding:
    hours = (now - last_materialized).total_seconds() / 3600
    lines = [f"{what} {asset} missed its freshness policy: {expectation}.",
             f"Last updated {last_materialized:%Y-%m-%d %H:%M} UTC, {hours:,.1f} hours ago."]
    return Finding("feed_late", f"{PREFIX} late: {asset}", "\n".join(lines), owners=tuple(owners), asset=asset,
                   link=links.asset(asset_path), created_at=now)


def tick_failed(*, kind: str, name: str, location: str, owners: Sequence[str], error: str | None, at: datetime,
                links: Links) -> Finding:
    lines = [f"The {kind} {name} failed its tick of {at:%Y-%m-%d %H:%M} UTC"
             + (f" ({error})." if error else "."),
             "Until it succeeds again, what it starts does not happen."]
    return Finding("sensor_failed", f"{PREFIX} {kind} failed: {name}", "\n".join(lines), owners=tuple(owners),
                   asset=f"{kind}:{name}", link=links.instigator(location, kind, name), created_at=at)


@dataclass(frozen=True)
class DigestDelivery:
    feed: str
    file_name: str
    partition: str | None
    outcome: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rules: Mapping[str, int]


@dataclass(frozen=True)
class DigestCheck:
    asset: str
    check: str
    partition: str | None
    severity: str


def digest(*, team: str, day: date, owners: Sequence[str], deliveries: Sequence[DigestDelivery],
           warn_checks: Sequence[DigestCheck], late: Sequence[str], links: Links, at: datetime) -> Finding:
    lines = [f"Daily digest of {team} for {day.isoformat()} (UTC)."]
    lines.append(f"Deliveries ({len(deliveries)}):" if deliveries else "Deliveries: none.")
    for d in deliveries:
        detail = (f"{d.rows_in:,} rows, {d.rows_valid:,} valid, {d.rows_quarantined:,} quarantined"
                  + (f" ({100 * d.rows_quarantined / d.rows_in:.1f}%)" if d.rows_in else "")
                  if d.outcome == "loaded" else d.outcome)
        lines.append(f"  {d.feed} {d.file_name}" + (f" [{d.partition}]" if d.partition else "") + f": {detail}")
    rules: dict[str, int] = {}
    for d in deliveries:
        for rule, n in d.rules.items():
            rules[rule] = rules.get(rule, 0) + n
    if rules:
        lines.append("Quarantine by rule: " + ", ".join(f"{r} {n:,}" for r, n in sorted(rules.items())))
    lines.append(f"WARN checks ({len(warn_checks)}):" if warn_checks else "WARN checks: none.")
    lines += [f"  {c.check} on {c.asset}" + (f" [{c.partition}]" if c.partition else "") for c in warn_checks]
    lines.append(("Late: " + ", ".join(late)) if late else "Late: none.")
    return Finding("digest", f"{PREFIX} daily digest {day.isoformat()}: {team}", "\n".join(lines),
                   owners=tuple(owners), asset=f"team:{team}", partition=day.isoformat(),
                   link=f"{links.base}/assets", created_at=at)
