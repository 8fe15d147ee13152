"""The feed registry: every feed of the contract (`shared/spec/feeds.md`) as data.

A feed is a file pattern, a format, its columns with their rules, a partitioning, an
owner and a freshness deadline. Ingestion assets, sensors, checks and the warehouse
sources are all generated from this registry, so a new feed is a declaration here
plus, where it has rules no column spec can say, a few named checks in `rules.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# Column kinds and the Arrow type each is validated into (as Arrow spells it: pyarrow is imported only by
# what reads or writes data, not by loading the registry).
ARROW_TYPES = {
    "string": "string",
    "int": "int64",
    "decimal": "double",
    "money": "decimal128(18, 2)",
    "date": "date32[day]",
    "timestamp": "timestamp[us, tz=UTC]",
    "bool": "bool",
}

US_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR"
).split()

LINEAGE_COLUMNS = {"_source_file": "string", "_source_row": "int", "_data_date": "date", "_ingested_at": "timestamp"}


@cache
def arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int64(), "decimal": pa.float64(), "money": pa.decimal128(18, 2),
            "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"), "bool": pa.bool_()}[kind]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "string"
    required: bool = False
    pattern: str | None = None  # full-match regex: `<name>_format`
    allowed: tuple[str, ...] | None = None  # enum: `<name>_allowed`
    min_value: float | None = None  # `<name>_range` (inclusive)
    min_exclusive: bool = False
    max_value: float | None = None  # `<name>_range` (inclusive)
    pii: str | None = None  # "hash": replaced by `<name>_hash`; "drop": never leaves raw
    rules: tuple[str, ...] = ()  # named rules of the contract, implemented in rules.py

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.kind)


@dataclass(frozen=True)
class Reference:
    """A foreign key of the contract's referential checks: reported per partition, never a row rejection.
    The check compares the partition's `column` with `target_column` of the latest `target_feed` partition."""

    column: str
    target_feed: str
    target_column: str

    @property
    def check_name(self) -> str:
        return f"{self.column}_in_{self.target_feed}"


@dataclass(frozen=True)
class Lookup:
    """Reference data a named rule looks up: the values of `column` in the validated `feed`, as of the
    delivery's data date (every partition up to it, or only the latest of them), plus `always`."""

    rule: str
    feed: str
    column: str
    latest_only: bool = False
    always: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feed:
    name: str
    title: str
    source: str
    file_pattern: str  # regex on the file name; group `date` is YYYYMMDD, optional group `time` HHMMSS
    format: str  # "delimited", "xlsx_or_csv", "fx_json" or "jsonl"
    columns: tuple[Column, ...]
    partitioning: str  # "weekly" (Friday week-ending) or "daily"
    owner_team: str
    owner_email: str
    delimiter: str = ","
    multiline_values: bool = False
    key: tuple[str, ...] = ()
    key_rule: str = "duplicate_key"
    repeated_keys: str = "all"  # "all": every row of a repeated key is quarantined; "later": all but the first
    mode: str = "snapshot"  # "snapshot": a delivery replaces its partition; "append": deliveries add up
    freshness: str = "daily"  # see defs/operations/freshness.py
    quarantine_warn_pct: float = 5.0  # above this share of rows quarantined, the rules check is an ERROR
    references: tuple[Reference, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    checks: tuple[str, ...] = ()  # feed-specific partition checks, by name (lib/quality.py)
    description: str = ""

    @property
    def landing_prefix(self) -> str:
        return f"landing/{self.name}/"

    @property
    def reference_feeds(self) -> tuple[str, ...]:
        """The other feeds whose data this feed's rules look up or its checks refer to: ingested before it."""
        names = [lookup.feed for lookup in self.lookups] + [ref.target_feed for ref in self.references]
        return tuple(name for name in dict.fromkeys(names) if name != self.name)

    def data_time(self, filename: str) -> datetime | None:
        """The instant a landing file's data ends (UTC): the time in its name, else the end of its data
        date. None when the name is not this feed's (only ASCII digits make a date)."""
        m = re.fullmatch(self.file_pattern, filename, flags=re.ASCII)
        if not m:
            return None
        try:
            day = date(int(m["date"][:4]), int(m["date"][4:6]), int(m["date"][6:]))
            clock = m.groupdict().get("time")
            if clock:
                return datetime.combine(day, time(int(clock[:2]), int(clock[2:4]), int(clock[4:])), UTC)
        except ValueError:
            return None
        return datetime.combine(day, time.max, UTC)

    def match(self, filename: str) -> date | None:
        """The data date of a landing file name, or None when it is not this feed's."""
        when = self.data_time(filename)
        return when.date() if when else None

    @property
    def source_columns(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def quarantines_records(self) -> bool:
        """JSON lines: a line that is not a JSON object is quarantined (`record_json`), not the file."""
        return self.format == "jsonl"

    def validated_columns(self) -> list[tuple[str, str]]:
        """(name, kind) of the validated dataset's columns: typed, PII hashed or dropped, lineage last."""
        out = []
        for c in self.columns:
            if c.pii == "hash":
                out.append((f"{c.name}_hash", "string"))
            elif c.pii != "drop":
                out.append((c.name, c.kind))
        return out + list(LINEAGE_COLUMNS.items())

    def validated_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in self.validated_columns()])


DIGITS10 = r"\d{10}"
SFDC_ID = dict(rules=("sfdc_id_format",))
ISO_DATE = dict(kind="date")
COMMERCIAL = ("commercial-analytics", "commercial-analytics@fe-pharma.example")
CRM = ("crm-operations", "crm-ops@fe-pharma.example")
PATIENT_SERVICES = ("patient-services", "patient-services@fe-pharma.example")
MEDICAL_AFFAIRS = ("medical-affairs", "medical-affairs@fe-pharma.example")
OMNICHANNEL = ("omnichannel-marketing", "omnichannel@fe-pharma.example")

FEEDS: dict[str, Feed] = {}


def _register(feed: Feed) -> None:
    FEEDS[feed.name] = feed


_register(Feed(
    name="iqvia_rx",
    title="IQVIA weekly prescriber-level prescriptions",
    source="IQVIA",
    file_pattern=r"RXDYN_WEEKLY_(?P<date>\d{8})\.txt(\.gz)?",
    format="delimited",
    delimiter="|",
    partitioning="weekly",
    freshness="weekly_tuesday",
    owner_team=COMMERCIAL[0], owner_email=COMMERCIAL[1],
    key=("prescriber_id", "ndc11", "week_ending", "payer_type", "channel"),
    references=(Reference("ndc11", "product_master", "ndc11"), Reference("npi", "sfdc_account", "npi")),
    description="Weekly prescriber x product x payer x channel TRx/NRx/NBRx; each delivery restates up to "
                "12 trailing weeks.",
    columns=(
        Column("prescriber_id", required=True, pattern=r"\d{1,10}"),
        Column("npi", rules=("npi_check_digit",)),
        Column("ndc11", required=True, rules=("ndc11_format",)),
        Column("week_ending", "date", required=True,
               rules=("week_ending_friday", "not_future", "week_in_window")),
        Column("payer_type", allowed=("COMMERCIAL", "MEDICARE", "MEDICAID", "CASH", "OTHER")),
        Column("channel", allowed=("RETAIL", "MAIL", "SPECIALTY", "LTC")),
        Column("nrx", "int", min_value=0, rules=("nbrx_le_nrx",)),
        Column("trx", "int", min_value=0, rules=("trx_ge_nrx",)),
        Column("nbrx", "int", min_value=0),
        Column("nqty", "decimal", min_value=0, rules=("nqty_le_tqty",)),
        Column("tqty", "decimal", min_value=0),
    ),
))

_register(Feed(
    name="sap_billing",
    title="SAP SD billing lines",
    source="SAP",
    file_pattern=r"SAP_BILLING_(?P<date>\d{8})\.(xlsx|csv)",
    format="xlsx_or_csv",
    partitioning="daily",
    owner_team="finance-data", owner_email="finance-data@fe-pharma.example",
    key=("billing_document", "billing_item"),
    references=(Reference("material", "product_master", "sap_material"),),
    lookups=(Lookup("currency_code", "fx_rates", "quote_currency", always=("EUR",)),),
    checks=("fx_rate_available",),
    description="SAP SD billing document items in their document currency.",
    columns=(
        Column("billing_document", required=True, pattern=DIGITS10),
        Column("billing_item", required=True, pattern=r"\d{6}"),
        Column("billing_type", allowed=("F2", "L2", "G2", "RE", "S1")),
        Column("billing_date", "date", required=True, rules=("not_future",)),
        Column("sales_org", required=True, pattern=r"[A-Z0-9]{4}"),
        Column("sold_to", required=True, pattern=DIGITS10),
        Column("ship_to", required=True, pattern=DIGITS10),
        Column("material", required=True, pattern=r"[0-9A-Z-]{1,18}"),
        Column("quantity", "decimal", rules=("sign_by_billing_type",)),
        Column("sales_unit", required=True, pattern=r"[A-Z]{2,3}"),
        Column("net_value", "money"),
        Column("currency", rules=("currency_code",)),
    ),
))

_register(Feed(
    name="sfdc_account",
    title="CRM HCP accounts (full snapshot)",
    source="Salesforce",
    file_pattern=r"SFDC_ACCOUNT_(?P<date>\d{8})\.csv",
    format="delimited",
    multiline_values=True,
    partitioning="daily",
    owner_team=CRM[0], owner_email=CRM[1],
    key=("account_id",),
    references=(Reference("territory_id", "sfdc_territory", "territory_id"),),
    description="Full snapshot of HCP accounts; PII hashed (email, phone) or dropped (address) at validation.",
    columns=(
        Column("account_id", required=True, **SFDC_ID),
        Column("npi", rules=("npi_check_digit",)),
        Column("first_name", required=True),
        Column("last_name", required=True),
        Column("specialty", allowed=("REI", "OBGYN", "ENDO", "PEDS_ENDO", "UROLOGY", "PCP", "NP_PA", "OTHER")),
        Column("email", pii="hash", pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+"),
        Column("phone", pii="hash"),
        Column("address_line1", pii="drop"),
        Column("city"),
        Column("state", allowed=tuple(US_STATES)),
        Column("zip", pattern=r"\d{5}"),
        Column("territory_id", required=True),
        Column("pdrp_opt_out", "bool"),
        Column("is_active", "bool"),
        Column("last_modified", "timestamp", rules=("not_future",)),
    ),
))

_register(Feed(
    name="sfdc_call",
    title="CRM field calls (incremental)",
    source="Salesforce",
    file_pattern=r"SFDC_CALL_(?P<date>\d{8})\.csv",
    format="delimited",
    multiline_values=True,
    partitioning="daily",
    owner_team=CRM[0], owner_email=CRM[1],
    key=("call_id",),
    references=(Reference("account_id", "sfdc_account", "account_id"),),
    lookups=(Lookup("products_detailed_allowed", "product_master", "brand_code", latest_only=True),),
    description="Field calls created or modified since the previous extract; the latest last_modified wins.",
    columns=(
        Column("call_id", required=True, **SFDC_ID),
        Column("account_id", required=True, **SFDC_ID),
        Column("rep_id", required=True),
        Column("territory_id", required=True),
        Column("call_datetime", "timestamp", required=True),
        Column("call_channel", allowed=("IN_PERSON", "VIRTUAL", "PHONE", "EMAIL")),
        Column("call_type", allowed=("DETAIL", "DETAIL_WITH_SAMPLE", "GROUP_DETAIL", "CALL_ONLY")),
        Column("products_detailed", rules=("products_detailed_format", "products_detailed_allowed")),
        Column("call_status", allowed=("PLANNED", "SUBMITTED", "CANCELLED")),
        Column("notes", pii="drop"),
        Column("last_modified", "timestamp", rules=("not_future", "submitted_not_after_modified")),
    ),
))

_register(Feed(
    name="sfdc_territory",
    title="Sales territory hierarchy (full snapshot)",
    source="Salesforce",
    file_pattern=r"SFDC_TERRITORY_(?P<date>\d{8})\.csv",
    format="delimited",
    multiline_values=True,
    partitioning="daily",
    owner_team=CRM[0], owner_email=CRM[1],
    key=("territory_id",),
    key_rule="territory_id_unique",
    description="Territory -> district -> region hierarchy and the rep assigned to each territory.",
    columns=(
        Column("territory_id", required=True),
        Column("territory_name", required=True),
        Column("district_id", required=True),
        Column("district_name", required=True),
        Column("region_id", required=True),
        Column("region_name", required=True),
        Column("rep_id"),
        Column("rep_name"),
    ),
))

_register(Feed(
    name="product_master",
    title="Product master: brands and markets (full snapshot)",
    source="Brand operations",
    file_pattern=r"PRODUCT_MASTER_(?P<date>\d{8})\.csv",
    format="delimited",
    multiline_values=True,
    partitioning="daily",
    owner_team="brand-operations", owner_email="brand-ops@fe-pharma.example",
    key=("ndc11",),
    key_rule="ndc11_unique",
    description="Every NDC of the franchise's markets, own brands and competitors.",
    columns=(
        Column("ndc11", required=True, rules=("ndc11_format",)),
        Column("sap_material"),
        Column("brand_code", required=True, pattern=r"[A-Z0-9_]{2,12}"),
        Column("brand_name", required=True),
        Column("molecule", required=True),
        Column("market", allowed=("FERTILITY", "ENDOCRINOLOGY")),
        Column("manufacturer", required=True),
        Column("is_own_brand", "bool"),
        Column("units_per_pack", "int", min_value=0, min_exclusive=True),
    ),
))

_register(Feed(
    name="fx_rates",
    title="Daily reference exchange rates",
    source="Exchange-rate API",
    file_pattern=r"FX_RATES_(?P<date>\d{8})\.json",
    format="fx_json",
    partitioning="daily",
    owner_team="finance-data", owner_email="finance-data@fe-pharma.example",
    key=("rate_date", "quote_currency"),
    description="EUR-based daily reference rates, pulled from the configured API into landing.",
    columns=(
        Column("rate_date", "date", required=True, rules=("not_future",)),
        Column("base_currency", required=True, pattern=r"[A-Z]{3}"),
        Column("quote_currency", required=True, pattern=r"[A-Z]{3}"),
        Column("rate", "decimal", required=True, min_value=0, min_exclusive=True),
    ),
))


_register(Feed(
    name="sp_dispense",
    title="Specialty pharmacy dispenses",
    source="Specialty pharmacy hub (PostgreSQL)",
    file_pattern=r"SP_DISPENSE_(?P<date>\d{8})\.csv\.gz",
    format="delimited",
    partitioning="daily",
    owner_team=PATIENT_SERVICES[0], owner_email=PATIENT_SERVICES[1],
    key=("dispense_id",),
    references=(Reference("ndc11", "product_master", "ndc11"),),
    description="Dispenses of the franchise's drugs by the specialty pharmacies, pulled daily by updated_at; "
                "across days the latest updated_at wins (a reversal replaces its dispense).",
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
        Column("payer_type", allowed=("COMMERCIAL", "MEDICARE", "MEDICAID", "CASH", "OTHER")),
        Column("copay_usd", "money", min_value=0),
        Column("status", allowed=("DISPENSED", "REVERSED")),
        Column("updated_at", "timestamp", required=True, rules=("not_future", "updated_after_dispense")),
    ),
))

_register(Feed(
    name="hcp_event",
    title="Speaker programs and medical events: attendances",
    source="Events API",
    file_pattern=r"HCP_EVENT_(?P<date>\d{8})\.jsonl",
    format="jsonl",
    partitioning="daily",
    owner_team=MEDICAL_AFFAIRS[0], owner_email=MEDICAL_AFFAIRS[1],
    key=("attendance_id",),
    references=(Reference("brand_code", "product_master", "brand_code"),),
    description="Attendances of speaker programs and medical events, pulled daily from the internal events "
                "API by updated_at; meal values are the Sunshine Act transfers of value.",
    columns=(
        Column("attendance_id", required=True, pattern=r"AT-\d{10}"),
        Column("event_id", required=True, pattern=r"EV-\d{8}"),
        Column("event_type", allowed=("SPEAKER_PROGRAM", "CONGRESS_SYMPOSIUM", "WEBINAR", "ROUNDTABLE")),
        Column("event_date", "date", required=True, rules=("not_future",)),
        Column("brand_code", required=True),
        Column("npi", required=True, rules=("npi_check_digit",)),
        Column("role", allowed=("SPEAKER", "ATTENDEE")),
        Column("attended", "bool"),
        Column("meal_value_usd", "money", min_value=0),
        Column("updated_at", "timestamp", required=True, rules=("not_future",)),
    ),
))

_register(Feed(
    name="hcp_engagement",
    title="Digital engagement events",
    source="HCP portal and approved email (Kinesis stream)",
    file_pattern=r"HCP_ENGAGEMENT_(?P<date>\d{8})_(?P<time>\d{6})_[A-Za-z0-9-]{1,64}_\d{1,9}\.jsonl\.gz",
    format="jsonl",
    partitioning="daily",
    mode="append",
    owner_team=OMNICHANNEL[0], owner_email=OMNICHANNEL[1],
    key=("event_id",),
    repeated_keys="later",
    references=(Reference("brand_code", "product_master", "brand_code"),),
    description="One event per HCP action on the portal or in approved email, streamed through Kinesis and "
                "landed in files by size and age; a partition is the union of its day's files.",
    columns=(
        Column("event_id", required=True,
               pattern=r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        Column("occurred_at", "timestamp", required=True, rules=("not_future",)),
        Column("channel", allowed=("EMAIL", "PORTAL", "WEBINAR")),
        Column("action", allowed=("SENT", "DELIVERED", "OPENED", "CLICKED", "VISITED", "DOWNLOADED"),
               rules=("action_fits_channel",)),
        Column("npi", rules=("npi_check_digit",)),
        Column("account_id", rules=("sfdc_id_format", "hcp_identified")),
        Column("brand_code", required=True),
        Column("content_id", required=True, pattern=r"[A-Za-z0-9_-]{1,64}"),
    ),
))


def _reference_data_first(feeds: dict[str, Feed]) -> dict[str, Feed]:
    """The registry in ingestion order: a feed comes after the feeds whose data its rules look up or its
    checks refer to, and otherwise in the order declared."""
    ordered: dict[str, Feed] = {}

    def place(feed: Feed, path: tuple[str, ...] = ()) -> None:
        if feed.name in ordered:
            return
        assert feed.name not in path, f"reference cycle: {' -> '.join(path + (feed.name,))}"
        for target in feed.reference_feeds:
            place(feeds[target], path + (feed.name,))
        ordered[feed.name] = feed

    for feed in feeds.values():
        place(feed)
    return ordered


FEEDS = _reference_data_first(FEEDS)


def feed_for_key(key: str) -> Feed | None:
    """The feed a landing key belongs to, if its folder and file name match one."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "landing" or parts[1] not in FEEDS:
        return None
    return FEEDS[parts[1]]
