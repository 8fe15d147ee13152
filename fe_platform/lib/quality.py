"""Data-quality measures over a validated partition, for the asset checks (plain Python, no Dagster)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from fe_platform.lib.feeds import Feed
from fe_platform.lib.ingestion import PART, DeliveryRecord, read_delivery_log, zone_key
from fe_platform.lib.lake import Lake

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"(\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Reference:
    """A foreign key of the contract's referential checks: reported, never a row rejection."""

    feed: str
    column: str
    target_feed: str
    target_column: str

    @property
    def check_name(self) -> str:
        return f"{self.column}_in_{self.target_feed}"


REFERENCES = (
    Reference("iqvia_rx", "ndc11", "product_master", "ndc11"),
    Reference("iqvia_rx", "npi", "sfdc_account", "npi"),
    Reference("sap_billing", "material", "product_master", "sap_material"),
    Reference("sfdc_call", "account_id", "sfdc_account", "account_id"),
    Reference("sfdc_account", "territory_id", "sfdc_territory", "territory_id"),
)


def latest_loaded(lake: Lake, feed: Feed, partition: str) -> DeliveryRecord | None:
    loaded = [r for r in read_delivery_log(lake, feed.name, partition=partition) if r.outcome == "loaded"]
    return loaded[-1] if loaded else None


def read_zone(lake: Lake, zone: str, feed: Feed, partition: str, columns: list[str] | None = None) -> pa.Table:
    return lake.read_parquet(zone_key(zone, feed.name, partition), columns=columns)


def parquet_rows(lake: Lake, zone: str, feed: Feed, partition: str) -> int:
    import pyarrow.parquet as pq

    with lake.filesystem.open_input_file(lake.path(zone_key(zone, feed.name, partition))) as f:
        return pq.ParquetFile(f).metadata.num_rows


def sample_rules(quarantine: pa.Table, rule: str, columns: list[str]) -> list[dict]:
    """Up to SAMPLE_ROWS quarantined rows that broke `rule`, with only the given (non-PII) columns."""
    reasons = quarantine["_reject_reasons"]
    hit = pc.match_substring_regex(reasons, f"(^|;){re.escape(rule)}(;|$)")
    return quarantine.filter(hit).select(columns).slice(0, SAMPLE_ROWS).to_pylist()


def sample_columns(feed: Feed) -> list[str]:
    """Columns safe to show in a check's sample: no PII, not even hashed."""
    return [c.name for c in feed.columns if c.pii is None] + ["_source_row"]


def pii_matches(table: pa.Table) -> dict[str, int]:
    """Per text column, how many values look like an email address or a phone number."""
    found = {}
    for name in table.column_names:
        if not pa.types.is_string(table.schema.field(name).type) or name.startswith("_"):
            continue
        column = table[name]
        hits = pc.sum(pc.or_(pc.match_substring_regex(column, EMAIL),
                             pc.match_substring_regex(column, PHONE))).as_py() or 0
        if hits:
            found[name] = hits
    return found


def latest_partition(lake: Lake, feed_name: str) -> str | None:
    keys = sorted(o.key for o in lake.list(f"validated/{feed_name}/") if o.key.endswith(PART))
    return keys[-1].split("/")[2] if keys else None


def unmatched(lake: Lake, ref: Reference, values: pa.Array) -> tuple[int, list[str], str | None]:
    """(count of non-null values with no match, a sample of them, the reference partition used)."""
    target_partition = latest_partition(lake, ref.target_feed)
    known = pa.array([], pa.string())
    if target_partition:
        known = lake.read_parquet(zone_key("validated", ref.target_feed, target_partition),
                                  columns=[ref.target_column])[ref.target_column]
        known = pc.drop_null(known).combine_chunks() if isinstance(known, pa.ChunkedArray) else known
    present = pc.drop_null(values)
    missing = present.filter(pc.invert(pc.is_in(present, value_set=known)))
    sample = sorted(set(missing.slice(0, 200).to_pylist()))[:SAMPLE_ROWS]
    return len(missing), sample, target_partition


def lines_without_fx_rate(lake: Lake, billing: pa.Table) -> tuple[int, list[dict]]:
    """Billing lines with no rate for their currency (or for USD) on or before the billing date."""
    import pandas as pd

    keys = [o.key for o in lake.list("validated/fx_rates/") if o.key.endswith(PART)]
    rates = (pa.concat_tables([lake.read_parquet(k, columns=["rate_date", "quote_currency"]) for k in keys])
             .to_pandas() if keys else pd.DataFrame({"rate_date": [], "quote_currency": []}))
    first = pd.to_datetime(rates.groupby("quote_currency")["rate_date"].min()).to_dict()
    first["EUR"] = pd.Timestamp.min
    lines = billing.select(["billing_document", "billing_item", "billing_date", "currency"]).to_pandas()
    when = pd.to_datetime(lines["billing_date"])
    own = pd.to_datetime(lines["currency"].map(first))
    usd = first.get("USD")
    lacking = own.isna() | (own > when) | (usd is None) | (when < (usd if usd is not None else when))
    bad = lines[lacking]
    sample = bad.head(SAMPLE_ROWS).astype(str).to_dict("records")
    return int(lacking.sum()), sample
