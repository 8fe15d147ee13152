"""The feeds of shared/spec/sources.md as registry declarations, and a reference reading of their files.

`PROPOSED` is the registry entry each feed should get in `fe_platform.lib.feeds` (names, patterns,
columns and rules exactly as sources.md says); `check_file` reads a landing file the way ingestion
must and names every rule each row breaks. The sample-data tests hold the generator's manifest to
it, so a manifest that promises N quarantined rows under a rule describes files that really have
them, and the registry test holds the real registry to `PROPOSED` once it has these feeds.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from datetime import date, datetime

from fe_platform.lib.feeds import Column, Feed
from fe_platform.lib.identifiers import is_valid_npi, is_valid_sfdc_id

NULLS = {"", "NULL", "null", "N/A"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|\+00:00)")
PAYERS = ("COMMERCIAL", "MEDICARE", "MEDICAID", "CASH", "OTHER")
CHANNEL_ACTIONS = {"EMAIL": {"SENT", "DELIVERED", "OPENED", "CLICKED"}, "PORTAL": {"VISITED", "DOWNLOADED", "CLICKED"},
                   "WEBINAR": {"VISITED"}}

PROPOSED = {
    "sp_dispense": Feed(
        name="sp_dispense", title="Specialty pharmacy dispenses", source="Specialty pharmacy hub (PostgreSQL)",
        file_pattern=r"SP_DISPENSE_(?P<date>\d{8})\.csv\.gz", format="delimited", partitioning="daily",
        owner_team="patient-services", owner_email="patient-services@fe-pharma.example", key=("dispense_id",),
        description="Every dispense version updated on the day (new, corrected, reversed); the latest updated_at "
                    "wins in the warehouse.",
        columns=(
            Column("dispense_id", "int", required=True, min_value=0, min_exclusive=True),
            Column("pharmacy_ncpdp", required=True, pattern=r"\d{7}"),
            Column("patient_token", required=True, pattern=r"[0-9a-f]{32}"),
            Column("prescriber_npi", required=True, rules=("npi_check_digit",)),
            Column("ndc11", required=True, rules=("ndc11_format",)),
            Column("dispense_date", "date", required=True, rules=("not_future",)),
            Column("fill_type", allowed=("NEW", "REFILL")),
            Column("quantity", "decimal", min_value=0, min_exclusive=True),
            Column("days_supply", "int", min_value=1, max_value=90),
            Column("payer_type", allowed=PAYERS),
            Column("copay_usd", "money", min_value=0),
            Column("status", allowed=("DISPENSED", "REVERSED")),
            Column("updated_at", "timestamp", required=True, rules=("not_future", "updated_after_dispense")),
        )),
    "hcp_event": Feed(
        name="hcp_event", title="Speaker programs and medical events: attendances",
        source="Events platform (internal REST API)", file_pattern=r"HCP_EVENT_(?P<date>\d{8})\.jsonl",
        format="jsonl", partitioning="daily", owner_team="medical-affairs",
        owner_email="medical-affairs@fe-pharma.example", key=("attendance_id",),
        description="Attendances updated on the day; meal_value_usd is a transfer of value (Sunshine Act).",
        columns=(
            Column("attendance_id", required=True, pattern=r"AT-\d{10}"),
            Column("event_id", required=True, pattern=r"EV-\d{8}"),
            Column("event_type", allowed=("SPEAKER_PROGRAM", "CONGRESS_SYMPOSIUM", "WEBINAR", "ROUNDTABLE")),
            Column("event_date", "date", required=True, rules=("not_future",)),
            Column("brand_code", required=True),  # known to the product master: a referential check
            Column("npi", required=True, rules=("npi_check_digit",)),
            Column("role", allowed=("SPEAKER", "ATTENDEE")),
            Column("attended", "bool"),
            Column("meal_value_usd", "money", min_value=0),
            Column("updated_at", "timestamp", required=True, rules=("not_future",)),
        )),
    "hcp_engagement": Feed(
        name="hcp_engagement", title="Digital HCP engagement events",
        source="HCP portal and approved email (Kinesis)",
        file_pattern=r"HCP_ENGAGEMENT_(?P<date>\d{8})_\d{6}_[A-Za-z0-9-]+_\d+\.jsonl\.gz", format="jsonl",
        partitioning="daily", owner_team="omnichannel-marketing", owner_email="omnichannel@fe-pharma.example",
        key=("event_id",), description="One event per HCP action on email, portal or webinar; append mode: a "
                                       "day holds every file closed that day, repeats removed in the warehouse.",
        mode="append", repeated_keys="later",
        columns=(
            Column("event_id", required=True, pattern=UUID),
            Column("occurred_at", "timestamp", required=True, rules=("not_future",)),
            Column("channel", allowed=tuple(CHANNEL_ACTIONS)),
            Column("action", allowed=("SENT", "DELIVERED", "OPENED", "CLICKED", "VISITED", "DOWNLOADED"),
                   rules=("action_fits_channel",)),
            Column("npi", rules=("npi_check_digit",)),
            Column("account_id", rules=("sfdc_id_format", "hcp_identified")),
            Column("brand_code", required=True),
            Column("content_id", required=True, pattern=r"[A-Za-z0-9_-]{1,64}"),
        )),
}


def contract_rules(feed: Feed) -> set[str]:
    rules = {feed.key_rule}
    for c in feed.columns:
        rules |= {f"{c.name}_required"} if c.required else set()
        rules |= {f"{c.name}_format"} if c.pattern or c.kind == "money" else set()
        rules |= {f"{c.name}_allowed"} if c.allowed else set()
        rules |= {f"{c.name}_range"} if c.min_value is not None else set()
        rules |= {f"{c.name}_type"} if c.kind != "string" else set()
        rules |= set(c.rules)
    if feed.quarantines_records:
        rules.add("record_json")
    return rules


def _text(value) -> str:
    """A JSON value as the text validation sees: JSON's own spelling, null and missing as empty."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _parse(kind: str, v: str):
    if kind == "int":
        return int(v) if re.fullmatch(r"-?\d+", v) else None
    if kind in ("decimal", "money"):
        return float(v) if re.fullmatch(r"-?\d+(\.\d+)?", v) else None
    if kind == "date":
        try:
            return date.fromisoformat(v) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) else None
        except ValueError:
            return None
    if kind == "timestamp":
        return datetime.fromisoformat(v.replace("Z", "+00:00")) if TIMESTAMP.fullmatch(v) else None
    if kind == "bool":
        return v == "true" if v in ("true", "false") else None
    return v


def reasons(feed: Feed, data_date: date, row: dict[str, str]) -> list[str]:
    out, typed = [], {}
    for c in feed.columns:
        v = row.get(c.name, "").strip()
        if v in NULLS:
            if c.required:
                out.append(f"{c.name}_required")
            continue
        p = _parse(c.kind, v)
        if p is None:
            out.append(f"{c.name}_type")
            continue
        typed[c.name] = p
        if c.pattern and not re.fullmatch(c.pattern, v):
            out.append(f"{c.name}_format")
        if c.kind == "money" and "." in v and len(v.split(".")[1]) > 2:
            out.append(f"{c.name}_format")
        if c.allowed and v not in c.allowed:
            out.append(f"{c.name}_allowed")
        high = c.max_value
        if c.min_value is not None and (p < c.min_value or (c.min_exclusive and p <= c.min_value)
                                        or (high is not None and p > high)):
            out.append(f"{c.name}_range")
        day = p.date() if isinstance(p, datetime) else p
        for rule in c.rules:
            if rule == "npi_check_digit" and not is_valid_npi(v) or rule == "ndc11_format" and not re.fullmatch(
                    r"\d{11}", v) or rule == "sfdc_id_format" and not is_valid_sfdc_id(v) or \
                    rule == "not_future" and day > data_date:
                out.append(rule)
    t = typed
    if "updated_after_dispense" in contract_rules(feed) and "updated_at" in t and "dispense_date" in t \
            and t["updated_at"].date() < t["dispense_date"]:
        out.append("updated_after_dispense")
    if feed.name == "hcp_engagement":
        channel, action = row.get("channel", ""), row.get("action", "")
        if channel in CHANNEL_ACTIONS and action in CHANNEL_ACTIONS["EMAIL"] | CHANNEL_ACTIONS["PORTAL"] \
                and action not in CHANNEL_ACTIONS[channel]:
            out.append("action_fits_channel")
        if row.get("npi", "") in NULLS and row.get("account_id", "") in NULLS:
            out.append("hcp_identified")
    return out


def read_rows(feed: Feed, data: bytes) -> list[dict[str, str] | None]:
    """The rows of a landing file as text; None for a line that is not a JSON object."""
    if feed.format == "delimited":
        table = list(csv.reader(io.StringIO(gzip.decompress(data).decode("utf-8"), newline="")))
        return [dict(zip(table[0], r, strict=True)) for r in table[1:]]
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
    rows: list[dict[str, str] | None] = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        rows.append({k: _text(v) for k, v in item.items()} if isinstance(item, dict) else None)
    return rows


def check_file(feed: Feed, key: str, data: bytes) -> tuple[list[dict | None], list[list[str]]]:
    """Rows of the file and the rules each breaks, by the contract (keys repeated within the file included)."""
    data_date = feed.match(key.rsplit("/", 1)[-1])
    assert data_date is not None, key
    rows = read_rows(feed, data)
    why = [reasons(feed, data_date, r) if r is not None else ["record_json"] for r in rows]
    keys = [tuple("" if (r or {}).get(k, "") in NULLS else r[k] for k in feed.key) if r is not None else None
            for r in rows]
    counts = Counter(k for k in keys if k is not None)
    seen: set = set()
    for k, w in zip(keys, why, strict=True):
        if k is None or counts[k] < 2:
            continue
        if feed.repeated_keys == "later" and k not in seen:
            seen.add(k)
            continue
        w.append(feed.key_rule)
    return rows, why
