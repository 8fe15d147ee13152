"""The row-level rules of the feed contract, as pandera schemas.

Rules run on the text of a delivery (every column a string, trimmed, null literals
already turned into nulls), so that a value that is not even of its column's type is
caught by a rule (`<column>_type`) instead of failing the file. Every check carries
its contract name; `check_chunk` turns pandera's failure cases into the `;`-separated
reasons a quarantined row keeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrorReason, SchemaErrors

from fe_platform.lib.feeds import Column, Feed
from fe_platform.lib.identifiers import sfdc_suffix

TYPE_PATTERNS = {
    "int": r"-?\d{1,18}",  # what fits a 64-bit integer
    "decimal": r"-?\d+(\.\d+)?",
    "money": r"-?\d{1,16}(\.\d+)?",  # what fits decimal(18, 2)
    "date": r"\d{4}-\d{2}-\d{2}",
    "timestamp": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|\+00:00)",
    "bool": r"(?i:true|false)",
}
RESTATEMENT_WEEKS = 12


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond the row: the file's data date (and the instant its data ends), the
    reference data its lookups found (rule name -> known values) and the keys repeated in the file."""

    data_date: date
    data_time: datetime | None = None  # default: the end of the data date
    lookups: dict[str, frozenset[str]] = field(default_factory=dict)
    duplicate_key_hashes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))

    @property
    def data_end(self) -> datetime:
        return self.data_time or datetime.combine(self.data_date, time.max, UTC)


# --- value parsing shared by the rules -------------------------------------------------------------
#
# The columns of a chunk repeat few distinct values (weeks, payers, NDCs, small counts), so a rule on
# values runs once per distinct value and its outcome is spread back over the rows.

def _arrow(s: pd.Series) -> pa.Array:
    return pyarrow.array(s, type=pyarrow.string(), from_pandas=True)


_chunk_work = threading.local()  # what the rules of the chunk being checked share (per thread)


@contextmanager
def chunk_scope() -> Iterator[None]:
    """Checking one chunk: its rules share their work on its columns until it is done."""
    _chunk_work.caches = {}
    try:
        yield
    finally:
        del _chunk_work.caches


def _once_per_column(compute: Callable[[pd.Series], object]) -> Callable[[pd.Series], object]:
    """Several rules look at the same column of the same chunk: within a `chunk_scope`, compute once per
    column. A column read twice from a frame gives two Series over one (Arrow-backed) array; the cache keys
    on that array and holds it, so its identity cannot be taken by another while cached."""
    def cached(s: pd.Series):
        caches = getattr(_chunk_work, "caches", None)
        if caches is None:
            return compute(s)
        cache, array = caches.setdefault(compute, {}), s.array
        hit = cache.get(id(array))
        if hit is None or hit[0] is not array:  # (a NumPy-backed column gives a new array each time: no hit)
            hit = cache[id(array)] = (array, compute(s))
        return hit[1]

    return cached


@_once_per_column
def distinct_values(s: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Each row's code, and the column's distinct values by code (null among them when there is one)."""
    codes, values = pd.factorize(s, use_na_sentinel=False)
    return codes, pd.Series(values, dtype=s.dtype)


def per_value(rule: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    """A rule on values alone, evaluated on the distinct values and spread back over the rows. A null
    breaks no value rule (`<column>_required` is the rule about nulls)."""
    def check(s: pd.Series) -> pd.Series:
        codes, values = distinct_values(s)
        outcome = pd.Series(rule(values)).fillna(False).to_numpy(dtype=bool) | values.isna().to_numpy()
        return pd.Series(outcome[codes], index=s.index)
    return check


def _parsed_per_value(parse: Callable[[pd.Series], np.ndarray]) -> Callable[[pd.Series], pd.Series]:
    """A parser of a column's distinct values, as a parser of the column (each column parsed once)."""
    @_once_per_column
    def parsed(s: pd.Series) -> np.ndarray:
        codes, values = distinct_values(s)
        return parse(values)[codes]

    return lambda s: pd.Series(parsed(s), index=s.index)


@_parsed_per_value
def as_number(s: pd.Series) -> np.ndarray:
    """The values that are plain decimals, as floats; anything else NaN."""
    values = _arrow(s)
    numeric = pc.if_else(pc.match_substring_regex(values, f"^{TYPE_PATTERNS['decimal']}$"), values, None)
    return pc.cast(numeric, pyarrow.float64()).to_numpy(zero_copy_only=False)


@_parsed_per_value
def as_date(s: pd.Series) -> np.ndarray:
    """The values that are real calendar dates (a timestamp's date part), as datetimes; anything else NaT."""
    text = pc.utf8_slice_codeunits(_arrow(s), 0, 10)
    days = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2026-02-30 over into March: a real date keeps the day of the month it was written with.
    written_day = pc.cast(pc.if_else(pc.is_valid(days), pc.utf8_slice_codeunits(text, 8, 10), "0"), pyarrow.int64())
    return pc.if_else(pc.equal(pc.day(days), written_day), days, None).to_numpy(zero_copy_only=False)


@_parsed_per_value
def as_timestamp(s: pd.Series) -> np.ndarray:
    """Real instants (no hour 25, no 30 February), as UTC datetimes; anything else NaT."""
    return pd.to_datetime(s, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None).to_numpy()


def key_hashes(df: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    """A 64-bit hash per row of its key columns, so a whole file's keys fit in little memory."""
    combined = np.zeros(len(df), dtype=np.uint64)
    for column in key:
        codes, values = distinct_values(df[column])
        combined = combined * np.uint64(1_000_003) ^ pd.util.hash_array(values.to_numpy(dtype=object))[codes]
    return combined


# --- the named rules of the contract ---------------------------------------------------------------

LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)  # a digit doubled, digits summed


def npi_check_digit(s: pd.Series) -> pd.Series:
    shaped = s.str.fullmatch(r"[12]\d{9}", na=False).to_numpy(dtype=bool)
    ok = np.zeros(len(s), dtype=bool)
    if shaped.any():
        # Ten ASCII digits per NPI: the Arrow data buffer is a digit matrix, no per-value Python work.
        npis = pc.filter(_arrow(s), pyarrow.array(shaped))
        npis = npis.combine_chunks() if isinstance(npis, pyarrow.ChunkedArray) else npis
        offsets = np.frombuffer(npis.buffers()[1], dtype=np.int32)[npis.offset:npis.offset + len(npis) + 1]
        digits = np.frombuffer(npis.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 10) - ord("0")
        body = digits[:, 8::-1]  # the first nine, rightmost first: that one is doubled
        total = (24 + LUHN_DOUBLED[body[:, 0::2]].sum(axis=1, dtype=np.int32)
                 + body[:, 1::2].sum(axis=1, dtype=np.int32))
        ok[shaped] = (10 - total % 10) % 10 == digits[:, 9]
    return pd.Series(ok, index=s.index)


def sfdc_id_format(s: pd.Series) -> pd.Series:
    shaped = s.str.fullmatch(r"[0-9A-Za-z]{18}", na=False)
    return shaped & s.map(lambda v: isinstance(v, str) and len(v) == 18 and sfdc_suffix(v[:15]) == v[15:])


def _le(left: str, right: str) -> Callable[[pd.DataFrame], pd.Series]:
    def check(df: pd.DataFrame) -> pd.Series:
        a, b = as_number(df[left]), as_number(df[right])
        return a.isna() | b.isna() | (a <= b)
    return check


def sign_by_billing_type(df: pd.DataFrame) -> pd.Series:
    positive = df["billing_type"].isin(["F2", "L2"])
    negative = df["billing_type"].isin(["G2", "RE", "S1"])
    ok = pd.Series(True, index=df.index)
    for column in ("quantity", "net_value"):
        value = as_number(df[column])
        ok &= ~(positive & (value < 0)) & ~(negative & (value > 0))
    return ok


def submitted_not_after_modified(df: pd.DataFrame) -> pd.Series:
    when, modified = as_timestamp(df["call_datetime"]), as_timestamp(df["last_modified"])
    return (df["call_status"] != "SUBMITTED") | when.isna() | modified.isna() | (when <= modified)


def _products(s: pd.Series) -> pd.Series:
    return s.str.split(";").map(lambda codes: [c.strip() for c in codes] if isinstance(codes, list) else [])


def products_detailed_format(s: pd.Series) -> pd.Series:
    return _products(s).map(lambda codes: len(codes) <= 3 and all(codes))


def _products_known(known: frozenset[str]) -> Callable[[pd.Series], pd.Series]:
    return lambda s: _products(s).map(lambda codes: all(c in known for c in codes if c))


def _not_future(ctx: RuleContext) -> Callable[[pd.Series], pd.Series]:
    """A date is not after the data date; an instant not after the moment the file's data ends."""
    day, end = pd.Timestamp(ctx.data_date), pd.Timestamp(ctx.data_end.astimezone(UTC).replace(tzinfo=None))

    def check(s: pd.Series) -> pd.Series:
        when = as_timestamp(s)
        return (as_date(s).isna() | (as_date(s) <= day)) & (when.isna() | (when <= end))
    return check


def updated_after_dispense(df: pd.DataFrame) -> pd.Series:
    updated, dispensed = as_date(df["updated_at"]), as_date(df["dispense_date"])
    return updated.isna() | dispensed.isna() | (updated >= dispensed)


ACTIONS_BY_CHANNEL = {
    "EMAIL": {"SENT", "DELIVERED", "OPENED", "CLICKED"},
    "PORTAL": {"VISITED", "DOWNLOADED", "CLICKED"},
    "WEBINAR": {"VISITED"},
}


KNOWN_ACTIONS = set().union(*ACTIONS_BY_CHANNEL.values())


def action_fits_channel(df: pd.DataFrame) -> pd.Series:
    """Judged only on known channels and actions: an unknown one breaks its own `_allowed` rule."""
    fits = [channel not in ACTIONS_BY_CHANNEL or action not in KNOWN_ACTIONS or action in ACTIONS_BY_CHANNEL[channel]
            for channel, action in zip(df["channel"], df["action"], strict=True)]
    return pd.Series(fits, index=df.index)


def hcp_identified(df: pd.DataFrame) -> pd.Series:
    return df["npi"].notna() | df["account_id"].notna()


def _week_ending_friday(s: pd.Series) -> pd.Series:
    d = as_date(s)
    return d.isna() | (d.dt.day_of_week == 4)


def _week_in_window(data_date: date) -> Callable[[pd.Series], pd.Series]:
    oldest = pd.Timestamp(data_date - timedelta(weeks=RESTATEMENT_WEEKS))
    return lambda s: as_date(s).isna() | (as_date(s) >= oldest)


def _known(known: frozenset[str]) -> Callable[[pd.Series], pd.Series]:
    allowed = sorted(known)
    return lambda s: s.isin(allowed)


def _named_rules(ctx: RuleContext) -> dict[str, tuple[str, Callable]]:
    """Rule name -> (level, check). Level "column" checks get a Series, "frame" checks the frame."""
    return {
        "npi_check_digit": ("column", npi_check_digit),
        "ndc11_format": ("column", lambda s: s.str.fullmatch(r"\d{11}", na=False)),
        "sfdc_id_format": ("column", sfdc_id_format),
        "not_future": ("column", _not_future(ctx)),
        "week_ending_friday": ("column", _week_ending_friday),
        "week_in_window": ("column", _week_in_window(ctx.data_date)),
        "currency_code": ("column", _known(ctx.lookups.get("currency_code", frozenset()))),
        "products_detailed_format": ("column", products_detailed_format),
        "products_detailed_allowed": ("column", _products_known(ctx.lookups.get("products_detailed_allowed",
                                                                                  frozenset()))),
        "trx_ge_nrx": ("frame", _le("nrx", "trx")),
        "nbrx_le_nrx": ("frame", _le("nbrx", "nrx")),
        "nqty_le_tqty": ("frame", _le("nqty", "tqty")),
        "sign_by_billing_type": ("frame", sign_by_billing_type),
        "submitted_not_after_modified": ("frame", submitted_not_after_modified),
        "updated_after_dispense": ("frame", updated_after_dispense),
        "action_fits_channel": ("frame", action_fits_channel),
        "hcp_identified": ("frame", hcp_identified),
    }


# --- the schema ------------------------------------------------------------------------------------

def _matches(pattern: str) -> Callable[[pd.Series], pd.Series]:
    return lambda s: s.str.fullmatch(pattern)


def _value_rules(column: Column, named: dict) -> dict[str, Callable[[pd.Series], pd.Series]]:
    """Rule name -> check of the column's values (each value on its own)."""
    name = column.name
    rules = {}
    if column.kind != "string":
        pattern = TYPE_PATTERNS[column.kind]
        if column.kind == "date":
            rules[f"{name}_type"] = lambda s: as_date(s).notna() & s.str.fullmatch(pattern)
        elif column.kind == "timestamp":
            rules[f"{name}_type"] = lambda s: s.str.fullmatch(pattern) & as_timestamp(s).notna()
        else:
            rules[f"{name}_type"] = _matches(pattern)
    if column.pattern:
        rules[f"{name}_format"] = _matches(column.pattern)
    elif column.kind == "money":
        rules[f"{name}_format"] = lambda s: ~s.str.fullmatch(r"-?\d+\.\d{3,}")
    if column.allowed:
        allowed = list(column.allowed)
        rules[f"{name}_allowed"] = lambda s: s.isin(allowed)
    if column.min_value is not None or column.max_value is not None:
        low, high = column.min_value, column.max_value

        def in_range(s: pd.Series) -> pd.Series:
            value, ok = as_number(s), pd.Series(True, index=s.index)
            if low is not None:
                ok &= ~(value <= low) if column.min_exclusive else ~(value < low)
            if high is not None:
                ok &= ~(value > high)
            return ok
        rules[f"{name}_range"] = in_range
    for rule in column.rules:
        level, fn = named[rule]
        if level == "column":
            assert rule not in rules, f"{name}: rule {rule} is named like a rule of the column's type"
            rules[rule] = fn
    return rules


def _column_checks(column: Column, named: dict) -> list[pa.Check]:
    checks = []
    if column.required:
        checks.append(pa.Check(lambda s: s.notna(), name=f"{column.name}_required", ignore_na=False))
    # Nulls are handled by per_value: pandera's ignore_na would hand every check a copy without them.
    checks += [pa.Check(per_value(rule), name=name, ignore_na=False)
               for name, rule in _value_rules(column, named).items()]
    return checks


def build_schema(feed: Feed, ctx: RuleContext) -> pa.DataFrameSchema:
    """The pandera schema of a feed's text rows, for one file (its data date and reference data)."""
    named = _named_rules(ctx)
    columns = {
        c.name: pa.Column(checks=_column_checks(c, named), nullable=True)  # text by construction: no dtype to check
        for c in feed.columns
    }
    frame_checks = [
        pa.Check(named[rule][1], name=rule)
        for c in feed.columns for rule in c.rules if named[rule][0] == "frame"
    ]
    if feed.key:
        frame_checks.append(pa.Check(_repeated_key_rule(feed, ctx.duplicate_key_hashes), name=feed.key_rule))
    if feed.quarantines_records:
        frame_checks.append(pa.Check(lambda df: df[RECORD_TEXT].isna(), name=RECORD_RULE))
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False, name=feed.name)


RECORD_TEXT = "_record_text"  # a JSON line that is not an object, as read (hashed before it is written)
RECORD_RULE = "record_json"


def _repeated_key_rule(feed: Feed, repeated: np.ndarray) -> Callable[[pd.DataFrame], pd.Series]:
    """`duplicate_key`: a row whose key occurs more than once in the file. Feeds that keep the first
    occurrence (`repeated_keys="later"`) pass it; the chunks of a file are checked in file order, so the
    first occurrence is the first one this check sees."""
    seen: set[int] = set()

    def check(df: pd.DataFrame) -> pd.Series:
        hashes = key_hashes(df, feed.key)
        repeats = np.isin(hashes, repeated)
        if feed.repeated_keys == "later" and repeats.any():
            rows = np.flatnonzero(repeats)
            first = ~pd.Series(hashes[rows]).duplicated().to_numpy() & ~np.isin(hashes[rows], list(seen))
            repeats[rows[first]] = False
            seen.update(int(h) for h in hashes[rows[first]])
        return pd.Series(~repeats, index=df.index)
    return check


def rule_names(feed: Feed) -> list[str]:
    """Every rule name that can quarantine a row of this feed, in the order reasons are listed."""
    return _check_order(build_schema(feed, RuleContext(date.today())))


def check_chunk(schema: pa.DataFrameSchema, df: pd.DataFrame) -> pd.Series:
    """The reasons of the rows that broke a rule (`;`-joined rule names in rule order), by row label.

    A rule that raises is a bug, not a verdict on the rows: it fails the run rather than pass them all."""
    try:
        schema.validate(df, lazy=True, inplace=True)  # no copy: the rules share work through the columns
    except SchemaErrors as errors:
        crashed = [e for e in errors.schema_errors if e.reason_code == SchemaErrorReason.CHECK_ERROR]
        if crashed:
            # Only the exception's type: its message may quote the cells (PII), and so would the chained error.
            raised = str(crashed[0].failure_cases).split("(", 1)[0]
            raise RuntimeError(f"rule {crashed[0].check.name} of {schema.name} raised {raised}") from None
        cases = errors.failure_cases
        cases = cases[cases["index"].notna()]
        order = {name: i for i, name in enumerate(_check_order(schema))}
        cases = cases.assign(_order=cases["check"].map(order)).sort_values("_order", kind="stable")
        joined = cases.drop_duplicates(["index", "check"]).groupby("index", sort=False)["check"].agg(";".join)
        return joined.set_axis(joined.index.astype(np.int64)).sort_index().rename(None)
    return pd.Series([], index=pd.Index([], dtype=np.int64), dtype=object)


def _check_order(schema: pa.DataFrameSchema) -> list[str]:
    return [ch.name for col in schema.columns.values() for ch in col.checks] + [ch.name for ch in schema.checks]
