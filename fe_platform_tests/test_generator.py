"""The synthetic feed generator: determinism, manifest truth, rule coverage, realism.

`_check_file` below is a small reference reading of the contract (feeds.md): it reads each file
the way ingestion must and names every rule each row breaks. The pulled feeds of sources.md have
their own reading (pulled_feeds_contract.py, test_pulled_sample_data.py). The tests hold the manifest to it, so
a manifest that promises N quarantined rows under a rule describes files that really have them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from python_calamine import CalamineWorkbook

from fe_platform.lib.feeds import FEEDS, feed_for_key
from fe_platform.lib.identifiers import is_valid_npi, is_valid_sfdc_id
from fe_platform.lib.lake import LocalLake
from fe_platform.sample_data import catalog
from fe_platform.sample_data.generator import FILE_FEEDS, RULE_EXCEPTIONS, generate, write_large_iqvia

END = date(2026, 11, 20)
NULLS = {"", "NULL", "null", "N/A"}
FX_CODES = set(catalog.FX_START) | {"EUR"}
BRAND_CODES = {b.code for b in catalog.BRANDS}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)")


class Unreadable(Exception):
    pass


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A default-length run (13 weeks) on a small population, with defects."""
    root = tmp_path_factory.mktemp("lake")
    lake = LocalLake(root)
    return lake, generate(lake, END, weeks=13, hcps=200, seed=7, defect_rate=0.01)


@pytest.fixture(scope="module")
def checked(full_run):
    """Every readable, non-duplicate file of the full run, read by the contract: key -> (header, rows, reasons)."""
    lake, manifest = full_run
    return {f["key"]: _check_file(f["key"], lake.read_bytes(f["key"])) for f in manifest["files"]
            if f["expected"] == "loaded" and f["feed"] in FILE_FEEDS}


# reference reading of the contract ------------------------------------------------------------
def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _read(key: str, data: bytes) -> tuple[list[str], list[list[str]]]:
    """Header (lower-cased) and data rows of a landing file, or Unreadable."""
    feed = feed_for_key(key)
    name = key.rsplit("/", 1)[1]
    if feed is None or feed.match(name) is None:
        raise Unreadable("bad name")
    if not data:
        raise Unreadable("empty")
    if feed.format == "fx_json":
        try:
            body = json.loads(data)
        except ValueError as e:
            raise Unreadable("invalid json") from e
        if not isinstance(body.get("rates"), dict):
            raise Unreadable("no rates")
        rows = [[_cell(body.get("date")), _cell(body.get("base")), code, _cell(rate)]
                for code, rate in body["rates"].items()]
        return ["rate_date", "base_currency", "quote_currency", "rate"], rows
    if name.endswith(".xlsx"):
        try:
            sheet = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
        except Exception as e:
            raise Unreadable("not xlsx") from e
        table = [[_cell(v) for v in row] for row in sheet]
    else:
        if name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except OSError as e:
                raise Unreadable("not gzip") from e
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Unreadable("not utf-8") from e
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=feed.delimiter))
    header = [h.strip().lower() for h in table[0]]
    missing = [c.name for c in feed.columns if c.required and c.name not in header]
    if missing:
        raise Unreadable(f"missing {missing}")
    width = len(header)
    return header, [row + [""] * (width - len(row)) for row in table[1:]]


def _parse(kind: str, value: str):
    try:
        if kind == "int":
            return int(value) if re.fullmatch(r"-?\d+", value) else None
        if kind in ("decimal", "money"):
            return float(value) if re.fullmatch(r"-?\d+(\.\d+)?", value) else None
        if kind == "date":
            return date.fromisoformat(value) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None
        if kind == "timestamp":
            return datetime.fromisoformat(value.replace("Z", "+00:00")) if TIMESTAMP.fullmatch(value) else None
        if kind == "bool":
            return value.lower() == "true" if value.lower() in ("true", "false") else None
    except ValueError:
        return None
    return value


def _named_rule_broken(rule: str, v: str, day, data_date: date) -> bool:
    if rule == "npi_check_digit":
        return not is_valid_npi(v)
    if rule == "ndc11_format":
        return not re.fullmatch(r"\d{11}", v)
    if rule == "sfdc_id_format":
        return not is_valid_sfdc_id(v)
    if rule == "not_future":
        return day > data_date
    if rule == "week_ending_friday":
        return day.weekday() != 4
    if rule == "week_in_window":
        return day < data_date - timedelta(weeks=12)
    if rule == "currency_code":
        return v not in FX_CODES
    if rule == "products_detailed_format":
        return len(v.split(";")) > 3
    if rule == "products_detailed_allowed":
        return any(x not in BRAND_CODES for x in v.split(";"))
    return False  # cross-column rules: checked per row below


def _reasons(feed, data_date: date, row: dict) -> list[str]:
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
        if c.min_value is not None and (p < c.min_value or (c.min_exclusive and p <= c.min_value)):
            out.append(f"{c.name}_range")
        day = p.date() if isinstance(p, datetime) else p
        out += [rule for rule in c.rules if _named_rule_broken(rule, v, day, data_date)]
    t = typed
    if feed.name == "iqvia_rx":
        if "nrx" in t and "trx" in t and t["trx"] < t["nrx"]:
            out.append("trx_ge_nrx")
        if "nrx" in t and "nbrx" in t and t["nbrx"] > t["nrx"]:
            out.append("nbrx_le_nrx")
        if "nqty" in t and "tqty" in t and t["nqty"] > t["tqty"]:
            out.append("nqty_le_tqty")
    if feed.name == "sap_billing":
        sign = {"F2": 1, "L2": 1, "G2": -1, "RE": -1, "S1": -1}.get(t.get("billing_type"))
        if sign and any(k in t and t[k] * sign < 0 for k in ("quantity", "net_value")):
            out.append("sign_by_billing_type")
    if feed.name == "sfdc_call" and t.get("call_status") == "SUBMITTED" and "call_datetime" in t \
            and "last_modified" in t and t["call_datetime"] > t["last_modified"]:
        out.append("submitted_not_after_modified")
    return out


def _check_file(key: str, data: bytes):
    """(header, rows, reasons per row) of a readable file, by the contract."""
    feed = feed_for_key(key)
    header, rows = _read(key, data)
    data_date = feed.match(key.rsplit("/", 1)[1])
    dicts = [dict(zip(header, r, strict=False)) for r in rows]
    reasons = [_reasons(feed, data_date, d) for d in dicts]
    keys = Counter(tuple("" if d.get(k, "").strip() in NULLS else d[k].strip() for k in feed.key) for d in dicts)
    for d, r in zip(dicts, reasons, strict=True):
        if keys[tuple("" if d.get(k, "").strip() in NULLS else d[k].strip() for k in feed.key)] > 1:
            r.append(feed.key_rule)
    return header, dicts, reasons


def _contract_rules(feed) -> set[str]:
    rules = {feed.key_rule}
    for c in feed.columns:
        rules |= {f"{c.name}_required"} if c.required else set()
        rules |= {f"{c.name}_format"} if c.pattern else set()
        rules |= {f"{c.name}_allowed"} if c.allowed else set()
        rules |= {f"{c.name}_range"} if c.min_value is not None else set()
        rules |= {f"{c.name}_type"} if c.kind != "string" else set()
        rules |= set(c.rules)
    return rules


# tests ----------------------------------------------------------------------------------------------
def test_same_arguments_same_bytes_and_seed_matters(tmp_path):
    def run(name, seed):
        lake = LocalLake(tmp_path / name)
        manifest = generate(lake, END, weeks=4, hcps=150, seed=seed)
        return manifest, {f["key"]: lake.read_bytes(f["key"]) for f in manifest["files"]}

    m1, files1 = run("a", 7)
    m2, files2 = run("b", 7)
    m3, files3 = run("c", 8)
    assert m1 == m2
    assert files1 == files2
    assert any(name.endswith(".xlsx") for name in files1) and any(name.endswith(".gz") for name in files1)
    assert files1 != files3


def test_end_friday_must_be_a_friday(tmp_path):
    with pytest.raises(ValueError, match="Friday"):
        generate(LocalLake(tmp_path), date(2026, 11, 19), weeks=1, hcps=10)


def test_manifest_matches_the_files(full_run, checked):
    lake, manifest = full_run
    rejected = 0
    for f in (f for f in manifest["files"] if f["feed"] in FILE_FEEDS):
        data = lake.read_bytes(f["key"])
        if f["expected"] == "rejected":
            rejected += 1
            with pytest.raises(Unreadable):
                _read(f["key"], data)
            continue
        header, rows, reasons = checked.get(f["key"]) or _check_file(f["key"], data)
        assert len(rows) == f["rows"], f["key"]
        expected_columns = set(FEEDS[f["feed"]].source_columns)
        assert sorted(set(header) - expected_columns) == f["drift_columns"], f["key"]
        if f["expected"] == "duplicate":
            assert any(g["key"] != f["key"] and g["expected"] == "loaded" and lake.read_bytes(g["key"]) == data
                       for g in manifest["files"] if g["feed"] == f["feed"])
            continue
        assert all(len(r) <= 1 for r in reasons), (f["key"], [r for r in reasons if len(r) > 1][:3])
        found = Counter(r[0] for r in reasons if r)
        assert dict(found) == f["row_defects"], f["key"]
    # only the duplicate delivery repeats bytes: any other repeat would be skipped as a duplicate
    hashes = Counter(lake.sha256(f["key"]) for f in manifest["files"])
    assert sum(n - 1 for n in hashes.values()) == sum(f["expected"] == "duplicate" for f in manifest["files"]) == 1
    kinds = {f["file_defect"] for f in manifest["files"]} - {None}
    assert kinds == {"wrong_delimiter", "not_declared_format", "bad_file_name", "missing_required_column",
                     "no_header", "undecodable", "empty_file", "invalid_json", "missing_rates",
                     "duplicate_delivery"}
    assert rejected == 10
    assert any(f["drift_columns"] for f in manifest["files"])
    for feed, total in ((k, v) for k, v in manifest["totals"].items() if k in FILE_FEEDS):
        loaded = [f for f in manifest["files"] if f["feed"] == feed and f["expected"] == "loaded"]
        assert total["rows"] == sum(f["rows"] for f in loaded)
        assert total["quarantined"] == sum(sum(f["row_defects"].values()) for f in loaded)


def test_every_rule_of_every_feed_is_injected(full_run):
    _, manifest = full_run
    for name, feed in ((n, f) for n, f in FEEDS.items() if n in FILE_FEEDS):
        injected = {r for f in manifest["files"] if f["feed"] == name for r in f["row_defects"]}
        expected = _contract_rules(feed) - {rule for f, rule in RULE_EXCEPTIONS if f == name}
        if name == "sap_billing":
            expected.add("net_value_format")  # money: more than 2 decimals
        assert injected == expected, name


def test_clean_data_is_consistent_and_realistic(full_run, checked):
    lake, manifest = full_run
    loaded = [f for f in manifest["files"] if f["expected"] == "loaded" and f["feed"] in FILE_FEEDS]
    clean: dict[str, list[tuple[str, dict]]] = {}
    for f in loaded:
        _, rows, reasons = checked[f["key"]]
        clean.setdefault(f["feed"], []).extend((f["key"], r) for r, why in zip(rows, reasons, strict=True)
                                               if not why)
    ndcs = {r["ndc11"] for _, r in clean["product_master"]}
    materials = {r["sap_material"] for _, r in clean["product_master"] if r["sap_material"]}
    accounts = {r["account_id"] for _, r in clean["sfdc_account"]}
    territories = {r["territory_id"] for _, r in clean["sfdc_territory"]}
    crm_npis = {r["npi"] for _, r in clean["sfdc_account"] if r["npi"]}
    ref = manifest["referential"]

    def unknown(feed, column, known):
        return dict(Counter(k for k, r in clean[feed] if r[column] not in known))

    assert unknown("iqvia_rx", "ndc11", ndcs) == ref["iqvia_rx.ndc11"]
    assert unknown("sap_billing", "material", materials) == ref["sap_billing.material"]
    assert unknown("sfdc_call", "account_id", accounts) == ref["sfdc_call.account_id"]
    assert unknown("sfdc_account", "territory_id", territories) == ref["sfdc_account.territory_id"]
    iqvia_npis = [r["npi"] for _, r in clean["iqvia_rx"] if r["npi"] not in NULLS]
    assert all(is_valid_npi(n) for n in iqvia_npis)
    assert all(is_valid_npi(r["npi"]) for _, r in clean["sfdc_account"] if r["npi"])
    no_match = Counter(k for k, r in clean["iqvia_rx"] if r["npi"] not in NULLS and r["npi"] not in crm_npis)
    assert dict(no_match) == ref["iqvia_rx.npi"]
    assert 0 < len(no_match) and len(iqvia_npis) < len(clean["iqvia_rx"])  # unmatched and NPI-less prescribers
    # own brands and competitors in both markets, materials for own brands only
    products = [r for _, r in clean["product_master"]]
    for market in ("FERTILITY", "ENDOCRINOLOGY"):
        assert {p["is_own_brand"] for p in products if p["market"] == market} == {"true", "false"}
    assert all(bool(p["sap_material"]) == (p["is_own_brand"] == "true") for p in products)
    assert {r["currency"] for _, r in clean["sap_billing"]} == {"USD", "EUR", "GBP", "CAD", "CHF", "JPY"}
    assert {r["billing_type"] for _, r in clean["sap_billing"]} == {"F2", "L2", "G2", "RE", "S1"}
    assert any(r["pdrp_opt_out"] == "true" for _, r in clean["sfdc_account"])
    assert any("\n" in r["address_line1"] or "," in r["address_line1"] for _, r in clean["sfdc_account"])
    assert any(not r["rep_id"] for _, r in clean["sfdc_territory"])
    # SCD2 material: some accounts change specialty or territory between snapshots
    versions: dict[str, set] = {}
    for _, r in clean["sfdc_account"]:
        versions.setdefault(r["account_id"], set()).add((r["specialty"], r["territory_id"]))
    assert sum(len(v) > 1 for v in versions.values()) >= 5
    # calls come again with a new status; IQVIA restates trailing weeks
    statuses: dict[str, set] = {}
    for _, r in clean["sfdc_call"]:
        statuses.setdefault(r["call_id"], set()).add(r["call_status"])
    assert any(len(s) > 1 for s in statuses.values())
    by_key: dict[tuple, set] = {}
    for _, r in clean["iqvia_rx"]:
        by_key.setdefault((r["prescriber_id"], r["ndc11"], r["week_ending"], r["payer_type"], r["channel"]),
                          set()).add(r["trx"])
    assert any(len(v) > 1 for v in by_key.values())


def test_no_defects_at_rate_zero(tmp_path):
    lake = LocalLake(tmp_path)
    calls = []
    manifest = generate(lake, END, weeks=3, hcps=120, defect_rate=0, progress=lambda *a: calls.append(a))
    assert len(calls) == len(manifest["files"]) and ("iqvia_rx", 3, 3) in calls
    assert all(f["expected"] == "loaded" and not f["row_defects"] and f["file_defect"] is None
               and not f["drift_columns"] for f in manifest["files"])
    assert set(manifest["referential"]) <= {"iqvia_rx.npi"}
    for f in (f for f in manifest["files"] if f["feed"] in FILE_FEEDS):
        _, rows, reasons = _check_file(f["key"], lake.read_bytes(f["key"]))
        assert not any(reasons), f["key"]
    assert len({lake.sha256(f["key"]) for f in manifest["files"]}) == len(manifest["files"])


def test_xlsx_and_gzip_open(full_run):
    lake, manifest = full_run
    xlsx = [f for f in manifest["files"] if f["key"].endswith(".xlsx") and f["expected"] == "loaded"]
    gz = [f for f in manifest["files"] if f["key"].endswith(".gz") and f["expected"] == "loaded"]
    assert len(xlsx) == 13 and len(gz) >= 4
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(lake.read_bytes(xlsx[0]["key"]))).get_sheet_by_index(0)
    assert sheet.to_python()[0][:2] == ["billing_document", "billing_item"]
    assert gzip.decompress(lake.read_bytes(gz[0]["key"])).startswith(b"PRESCRIBER_ID|NPI|")


def test_cadence(full_run):
    _, manifest = full_run
    loaded = Counter(f["feed"] for f in manifest["files"] if f["expected"] == "loaded" and f["feed"] in FILE_FEEDS)
    assert loaded == {"iqvia_rx": 13, "sap_billing": 65, "sfdc_call": 65, "fx_rates": 70, "sfdc_account": 13,
                      "sfdc_territory": 13, "product_master": 13}
    iqvia = [f for f in manifest["files"] if f["feed"] == "iqvia_rx" and f["expected"] == "loaded"]
    assert all(date.fromisoformat(f["partition"]).weekday() == 4 for f in iqvia)


@pytest.mark.parametrize("compress", [False, True])
def test_large_iqvia_file_is_clean(tmp_path, compress):
    path = write_large_iqvia(tmp_path / ("RXDYN_WEEKLY_20261120.txt" + (".gz" if compress else "")), 10_000,
                             END, gzip=compress)
    key = f"landing/iqvia_rx/{path.name}"
    _, rows, reasons = _check_file(key, path.read_bytes())
    assert len(rows) == 10_000
    assert not any(reasons)
    again = write_large_iqvia(tmp_path / "again" / path.name, 10_000, END, gzip=compress)
    assert again.read_bytes() == path.read_bytes()
