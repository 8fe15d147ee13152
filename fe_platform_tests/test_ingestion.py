"""A delivery from landing through raw to validated and quarantine, on a local lake."""

import gzip
import hashlib
import hmac
import io
import json

import pyarrow.parquet as pq
import pytest
import xlsxwriter

from fe_platform.lib import readers
from fe_platform.lib.delivery_log import read_delivery_log
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.ingestion import ingest_landing_file, reject, revalidate_partition
from fe_platform.lib.lake import LocalLake
from fe_platform.lib.zones import current_version, read_partition
from fe_platform_tests.test_rules import CLEAN

KEY = "pii-test-key-0123456789"


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def delimited(feed_name: str, rows: list[dict], sep: str | None = None, header: list[str] | None = None) -> str:
    feed = FEEDS[feed_name]
    sep = sep or feed.delimiter
    header = header or feed.source_columns
    out = io.StringIO()
    import csv

    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c.strip().lower()) is None else row[c.strip().lower()] for c in header])
    return out.getvalue()


def land(lake, feed_name: str, filename: str, data: bytes | str) -> str:
    key = f"landing/{feed_name}/{filename}"
    lake.put_bytes(data.encode() if isinstance(data, str) else data, key)
    return key


def validated(lake, feed_name: str, partition: str):
    return read_partition(lake, "validated", feed_name, partition)


def quarantined(lake, feed_name: str, partition: str):
    return read_partition(lake, "quarantine", feed_name, partition)


def iqvia_rows(n: int, **changes) -> list[dict]:
    return [{**CLEAN["iqvia_rx"], "prescriber_id": str(1000 + i), **changes} for i in range(n)]


# --- readers ---------------------------------------------------------------------------------------

def test_pipe_delimited_loads_with_lineage(lake):
    rows = iqvia_rows(3) + [{**CLEAN["iqvia_rx"], "prescriber_id": "9", "payer_type": "UNKNOWN"}]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    record = ingest_landing_file(lake, key, KEY)
    assert (record.outcome, record.rows_in, record.rows_valid, record.rows_quarantined) == ("loaded", 4, 3, 1)
    table = validated(lake, "iqvia_rx", "2026-11-20")
    assert table["_source_row"].to_pylist() == [1, 2, 3]
    assert set(table["_source_file"].to_pylist()) == {key}
    assert str(table.schema.field("week_ending").type) == "date32[day]"
    assert str(table.schema.field("nrx").type) == "int64"
    bad = quarantined(lake, "iqvia_rx", "2026-11-20").to_pylist()
    assert bad[0]["_source_row"] == 4 and bad[0]["_reject_reasons"] == "payer_type_allowed"
    assert bad[0]["payer_type"] == "UNKNOWN"  # kept as text
    assert lake.exists(record.raw_key) and lake.read_bytes(record.raw_key) == lake.read_bytes(key)


def test_gzip_and_restatements_keep_one_partition_per_delivery(lake):
    first = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt.gz",
                 gzip.compress(delimited("iqvia_rx", iqvia_rows(2, week_ending="2026-11-13")).encode(), mtime=0))
    second = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt",
                  delimited("iqvia_rx", iqvia_rows(2, week_ending="2026-11-13", trx="9")))
    assert ingest_landing_file(lake, first, KEY).rows_valid == 2
    assert ingest_landing_file(lake, second, KEY).rows_valid == 2
    assert validated(lake, "iqvia_rx", "2026-11-13")["trx"].to_pylist() == [5, 5]
    assert validated(lake, "iqvia_rx", "2026-11-20")["trx"].to_pylist() == [9, 9]


def test_names_are_matched_case_insensitively_in_any_order_and_drift_is_kept_out(lake):
    header = ["  TQTY", "nqty ", "NBRX", "trx", "nrx", "Channel", "payer_type", "week_ending", "NDC11", "npi",
              "prescriber_id", "extra_col"]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(2), header=header))
    record = ingest_landing_file(lake, key, KEY)
    assert record.outcome == "loaded" and record.rows_valid == 2
    assert json.loads(record.drift_columns) == ["extra_col"]
    assert "extra_col" not in validated(lake, "iqvia_rx", "2026-11-20").column_names


def test_null_literals_mean_null(lake):
    rows = [dict(CLEAN["iqvia_rx"], prescriber_id=str(i), npi=v) for i, v in enumerate(["", "NULL", "null", "N/A"])]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    assert ingest_landing_file(lake, key, KEY).rows_valid == 4
    assert validated(lake, "iqvia_rx", "2026-11-20")["npi"].to_pylist() == [None] * 4
    required = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt",
                    delimited("iqvia_rx", [dict(CLEAN["iqvia_rx"], week_ending="2026-11-13", ndc11="N/A")]))
    ingest_landing_file(lake, required, KEY)
    assert quarantined(lake, "iqvia_rx", "2026-11-13")["_reject_reasons"].to_pylist() == ["ndc11_required"]


def test_values_are_trimmed_of_ascii_and_unicode_spaces(lake):
    rows = [dict(CLEAN["iqvia_rx"], prescriber_id="1", payer_type="  COMMERCIAL\t", npi=" NULL "),
            dict(CLEAN["iqvia_rx"], prescriber_id="2", channel="RETAIL\u00a0", nrx="\u2003" + CLEAN["iqvia_rx"]["nrx"]),
            dict(CLEAN["iqvia_rx"], prescriber_id="3")]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    assert ingest_landing_file(lake, key, KEY).rows_valid == 3
    table = validated(lake, "iqvia_rx", "2026-11-20")
    assert table["payer_type"].to_pylist()[0] == "COMMERCIAL" and table["npi"].to_pylist()[0] is None
    assert table["channel"].to_pylist()[1] == "RETAIL" and table["nrx"].to_pylist()[1] == int(CLEAN["iqvia_rx"]["nrx"])

def test_csv_with_bom_and_rfc4180_quoting(lake):
    tricky = dict(CLEAN["sfdc_account"], last_name='O"Neil, Jr.', address_line1="1 Main St\nSuite 2",
                  city="Boston, MA")
    text = delimited("sfdc_account", [tricky, CLEAN["sfdc_account"] | {"account_id": None}])
    key = land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", "\ufeff" + text)
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_in, record.rows_valid, record.rows_quarantined) == (2, 1, 1)
    row = validated(lake, "sfdc_account", "2026-11-20").to_pylist()[0]
    assert row["last_name"] == 'O"Neil, Jr.' and row["city"] == "Boston, MA"
    assert quarantined(lake, "sfdc_account", "2026-11-20")["_source_row"].to_pylist() == [2]


def test_pii_is_hashed_with_the_key_and_never_left_in_clear(lake):
    rows = [CLEAN["sfdc_account"], dict(CLEAN["sfdc_account"], account_id=None)]
    key = land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", rows))
    ingest_landing_file(lake, key, KEY)
    table = validated(lake, "sfdc_account", "2026-11-20")
    assert {"email", "phone", "address_line1"}.isdisjoint(table.column_names)
    expected = hmac.new(KEY.encode(), b"ana.ruiz@clinic.example", hashlib.sha256).hexdigest()
    assert table["email_hash"].to_pylist() == [expected]
    for zone in ("validated", "quarantine"):
        blob = b"".join(lake.read_bytes(k) for k in current_version(lake, "sfdc_account", "2026-11-20").keys(zone))
        for secret in (b"ana.ruiz@clinic.example", b"555-0100", b"1 Main St"):
            assert secret not in blob, f"{secret!r} in clear in {zone}"


def test_call_notes_never_pass_raw(lake):
    key = land(lake, "sfdc_call", "SFDC_CALL_20261120.csv", delimited("sfdc_call", [CLEAN["sfdc_call"]]))
    ingest_landing_file(lake, key, KEY)
    assert "notes" not in validated(lake, "sfdc_call", "2026-11-20").column_names
    assert "notes" not in quarantined(lake, "sfdc_call", "2026-11-20").column_names


def _xlsx(rows: list[dict]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    columns = FEEDS["sap_billing"].source_columns
    sheet.write_row(0, 0, columns)
    for i, row in enumerate(rows, start=1):
        for j, column in enumerate(columns):
            value = row[column]
            if column in ("quantity", "net_value") and i % 2:
                sheet.write_number(i, j, float(value))  # stored as a number
            else:
                sheet.write_string(i, j, value)  # stored as text
    book.close()
    return out.getvalue()


def test_xlsx_with_numbers_stored_as_numbers_or_text(lake):
    fx = {"base": "EUR", "date": "2026-11-19", "rates": {"USD": 1.05}}
    ingest_landing_file(lake, land(lake, "fx_rates", "FX_RATES_20261119.json", json.dumps(fx)), KEY)
    rows = [dict(CLEAN["sap_billing"], billing_item=f"{10 * (i + 1):06d}") for i in range(4)]
    key = land(lake, "sap_billing", "SAP_BILLING_20261120.xlsx", _xlsx(rows))
    record = ingest_landing_file(lake, key, KEY)
    assert (record.outcome, record.rows_valid) == ("loaded", 4), record
    table = validated(lake, "sap_billing", "2026-11-20")
    assert [str(v) for v in table["net_value"].to_pylist()] == ["1200.50"] * 4
    assert table["quantity"].to_pylist() == [10.0] * 4


def test_currencies_unknown_to_the_fx_feed_are_quarantined(lake):
    key = land(lake, "sap_billing", "SAP_BILLING_20261120.csv", delimited("sap_billing", [CLEAN["sap_billing"]]))
    assert ingest_landing_file(lake, key, KEY).rules == {"currency_code": 1}


def test_fx_json_becomes_one_row_per_quote_currency(lake):
    body = {"base": "EUR", "date": "2026-11-20", "rates": {"USD": 1.0512, "GBP": 0.86, "JPY": -1}}
    key = land(lake, "fx_rates", "FX_RATES_20261120.json", json.dumps(body))
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_in, record.rows_valid, record.rows_quarantined) == (3, 2, 1)
    assert validated(lake, "fx_rates", "2026-11-20")["quote_currency"].to_pylist() == ["USD", "GBP"]
    assert quarantined(lake, "fx_rates", "2026-11-20")["_reject_reasons"].to_pylist() == ["rate_range"]


def test_small_chunks_keep_row_numbers_and_find_duplicates_across_chunks(lake, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(readers, "CHUNK_ROWS", 30)
    rows = iqvia_rows(200)
    rows.append(dict(rows[0]))  # the first row's key again, 200 rows (several chunks) later
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_in, record.rows_valid, record.rows_quarantined) == (201, 199, 2)
    bad = quarantined(lake, "iqvia_rx", "2026-11-20")
    assert bad["_source_row"].to_pylist() == [1, 201]
    assert set(bad["_reject_reasons"].to_pylist()) == {"duplicate_key"}
    assert validated(lake, "iqvia_rx", "2026-11-20")["_source_row"].to_pylist() == list(range(2, 201))



def test_a_bad_line_after_many_chunks_rejects_the_whole_file_and_publishes_nothing(lake, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(readers, "CHUNK_ROWS", 30)
    text = delimited("iqvia_rx", iqvia_rows(200)) + "1|2|3\n"  # chunks already checked when this line is read
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", text)
    record = ingest_landing_file(lake, key, KEY)
    assert record.outcome == "rejected" and "wrong number of fields" in record.reason
    assert not list(lake.list("validated/")) and not list(lake.list("quarantine/"))


def test_blank_lines_break_the_required_rules_only(lake):
    text = delimited("iqvia_rx", iqvia_rows(2)) + "|" * 10 + "\n" + "|" * 10 + "\n"
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", text)
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_valid, record.rows_quarantined) == (2, 2)
    assert set(quarantined(lake, "iqvia_rx", "2026-11-20")["_reject_reasons"].to_pylist()) == {
        "prescriber_id_required;ndc11_required;week_ending_required"}

# --- whole files rejected --------------------------------------------------------------------------

GOOD_IQVIA = delimited("iqvia_rx", iqvia_rows(2))
UNREADABLE = [
    ("wrong delimiter", "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(2), sep=","),
     "wrong delimiter"),
    ("missing column", "iqvia_rx", "RXDYN_WEEKLY_20261120.txt",
     delimited("iqvia_rx", iqvia_rows(2), header=FEEDS["iqvia_rx"].source_columns[:-1]), "missing required column"),
    ("no header", "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", GOOD_IQVIA.split("\n", 1)[1], "header"),
    ("empty", "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", b"", "empty"),
    ("undecodable", "sfdc_territory", "SFDC_TERRITORY_20261120.csv",
     delimited("sfdc_territory", [CLEAN["sfdc_territory"]]).encode().replace(b"Boston", b"Bost\xff\xfen"),
     "UTF-8"),
    ("not gzip", "iqvia_rx", "RXDYN_WEEKLY_20261120.txt.gz", GOOD_IQVIA, "gzip"),
    ("xlsx that is csv", "sap_billing", "SAP_BILLING_20261120.xlsx", delimited("sap_billing", [CLEAN["sap_billing"]]),
     "XLSX"),
    ("invalid json", "fx_rates", "FX_RATES_20261120.json", '{"base": "EUR", ', "JSON"),
    ("json without rates", "fx_rates", "FX_RATES_20261120.json", '{"base": "EUR", "date": "2026-11-20"}', "rates"),
]


@pytest.mark.parametrize("case,feed_name,filename,data,words", UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_unreadable_file_is_rejected_whole_with_a_reason(lake, case, feed_name, filename, data, words):
    key = land(lake, feed_name, filename, data)
    record = ingest_landing_file(lake, key, KEY)
    assert record.outcome == "rejected"
    assert words.lower() in record.reason.lower(), record.reason
    error = json.loads(lake.read_bytes(f"rejected/{feed_name}/{filename}.error.json"))
    assert error["file"] == key and error["problem"] == record.reason
    assert lake.read_bytes(f"rejected/{feed_name}/{filename}") == lake.read_bytes(key)
    assert not list(lake.list(f"validated/{feed_name}/")) and not list(lake.list(f"raw/{feed_name}/"))
    # ... and the next file of the feed still loads
    other = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261113.txt",
                 delimited("iqvia_rx", iqvia_rows(2, week_ending="2026-11-13")))
    assert ingest_landing_file(lake, other, KEY).outcome == "loaded"


# --- duplicates and re-runs ------------------------------------------------------------------------

def test_same_bytes_again_are_a_duplicate_counted_once(lake):
    text = delimited("sfdc_territory", [CLEAN["sfdc_territory"]])
    first = land(lake, "sfdc_territory", "SFDC_TERRITORY_20261113.csv", text)
    again = land(lake, "sfdc_territory", "SFDC_TERRITORY_20261120.csv", text)
    assert ingest_landing_file(lake, first, KEY).outcome == "loaded"
    record = ingest_landing_file(lake, again, KEY)
    assert record.outcome == "duplicate" and first in record.reason
    assert current_version(lake, "sfdc_territory", "2026-11-20") is None
    log = read_delivery_log(lake, "sfdc_territory")
    assert [r.outcome for r in log] == ["loaded", "duplicate"]
    assert sum(r.rows_valid for r in log) == 1
    # ingesting the very same landing file again records nothing new
    assert ingest_landing_file(lake, first, KEY).outcome == "loaded"
    assert len(read_delivery_log(lake, "sfdc_territory")) == 2


def test_rerunning_a_partition_gives_the_same_dataset(lake, tmp_path):
    rows = iqvia_rows(5) + [dict(CLEAN["iqvia_rx"], nrx="x")]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    ingest_landing_file(lake, key, KEY)
    first = current_version(lake, "iqvia_rx", "2026-11-20")
    before = {z: read_partition(lake, z, "iqvia_rx", "2026-11-20") for z in ("validated", "quarantine")}
    version = revalidate_partition(lake, FEEDS["iqvia_rx"], "2026-11-20", KEY, tmp_path)
    assert [p.landing_key for p in version.parts] == [key] and version.version != first.version
    after = {z: read_partition(lake, z, "iqvia_rx", "2026-11-20") for z in ("validated", "quarantine")}
    assert all(after[z].equals(before[z]) for z in before)
    assert validated(lake, "iqvia_rx", "2026-11-20")["_source_file"].to_pylist() == [key] * 5


def test_a_failed_write_leaves_the_previous_partition(lake, monkeypatch):
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(3)))
    ingest_landing_file(lake, key, KEY)
    part = current_version(lake, "iqvia_rx", "2026-11-20").keys("validated")[0]
    before = lake.read_bytes(part)

    def broken_copy(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("shutil.copyfile", broken_copy)
    with pytest.raises(OSError):
        lake.put_bytes(b"partial", part)
    assert lake.read_bytes(part) == before
    assert pq.read_metadata(lake.path(part)).num_rows == 3
    folder = lake.path(part.rsplit("/", 1)[0])
    assert not [p for p in __import__("os").listdir(folder) if p.startswith(".tmp-")]


def test_values_the_rules_let_through_but_no_type_holds_are_quarantined(lake):
    rows = iqvia_rows(2) + [dict(CLEAN["iqvia_rx"], prescriber_id="77", trx="99999999999999999999")]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    assert ingest_landing_file(lake, key, KEY).rules == {"trx_type": 1}
    accounts = [CLEAN["sfdc_account"], dict(CLEAN["sfdc_account"], account_id=None,
                                            last_modified="2026-11-19T25:00:00Z")]
    key = land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", accounts))
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_valid, record.rules) == (1, {"account_id_required": 1, "last_modified_type": 1})


def test_rejection_reasons_never_quote_the_rows(lake):
    lines = delimited("sfdc_account", [CLEAN["sfdc_account"]]).splitlines()
    broken = lines[0] + "\n" + lines[1] + ",one-field-too-many\n"
    key = land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", broken)
    record = ingest_landing_file(lake, key, KEY)
    assert record.outcome == "rejected" and "wrong number of fields" in record.reason
    error = lake.read_bytes("rejected/sfdc_account/SFDC_ACCOUNT_20261120.csv.error.json")
    for secret in (b"ana.ruiz@clinic.example", b"555-0100", b"1 Main St"):
        assert secret not in error and secret.decode() not in record.reason


def test_a_file_rejected_for_its_name_loads_once_renamed(lake):
    data = delimited("iqvia_rx", iqvia_rows(2))
    bad = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.TXT", data)
    obj = next(o for o in lake.list("landing/iqvia_rx/") if o.key == bad)
    assert reject(lake, FEEDS["iqvia_rx"], obj, "bad name").outcome == "rejected"
    good = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", data)
    assert ingest_landing_file(lake, good, KEY).outcome == "loaded"


def test_a_header_without_rows_is_rejected(lake):
    key = land(lake, "sfdc_account", "SFDC_ACCOUNT_20261120.csv", delimited("sfdc_account", []))
    record = ingest_landing_file(lake, key, KEY)
    assert record.outcome == "rejected" and "no data rows" in record.reason


def test_a_currency_quoted_twice_is_two_quarantined_rows(lake):
    key = land(lake, "fx_rates", "FX_RATES_20261120.json",
               '{"base": "EUR", "date": "2026-11-20", "rates": {"USD": 1.05, "GBP": 0.86, "USD": 1.06}}')
    record = ingest_landing_file(lake, key, KEY)
    assert (record.rows_in, record.rows_valid, record.rules) == (3, 1, {"duplicate_key": 2})
