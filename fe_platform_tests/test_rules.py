"""Every rule of the feed contract: a row that passes and a row that breaks exactly that rule."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fe_platform.lib import rules
from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.identifiers import is_valid_npi, is_valid_sfdc_id, npi_check_digit, sfdc_suffix
from fe_platform.lib.rules import RuleContext, build_schema, check_chunk, chunk_scope, key_hashes, rule_names

DATA_DATE = date(2026, 11, 20)  # a Friday
ACCOUNT = "001Dn00000AbCdEFGH"[:15] + sfdc_suffix("001Dn00000AbCdE")
CALL = "a0CDn00000XyZ12" + sfdc_suffix("a0CDn00000XyZ12")

CLEAN = {
    "iqvia_rx": dict(prescriber_id="1234", npi="1234567893", ndc11="12345678901", week_ending="2026-11-20",
                     payer_type="COMMERCIAL", channel="RETAIL", nrx="3", trx="5", nbrx="1", nqty="30",
                     tqty="60"),
    "sap_billing": dict(billing_document="9000000001", billing_item="000010", billing_type="F2",
                        billing_date="2026-11-20", sales_org="US01", sold_to="0001000001", ship_to="0001000002",
                        material="FE-1001", quantity="10", sales_unit="EA", net_value="1200.50", currency="USD"),
    "sfdc_account": dict(account_id=ACCOUNT, npi="1558598797", first_name="Ana", last_name="Ruiz",
                         specialty="REI", email="ana.ruiz@clinic.example", phone="(617) 555-0100",
                         address_line1="1 Main St", city="Boston", state="MA", zip="02115", territory_id="T01",
                         pdrp_opt_out="false", is_active="TRUE", last_modified="2026-11-19T10:00:00Z"),
    "sfdc_call": dict(call_id=CALL, account_id=ACCOUNT, rep_id="R01", territory_id="T01",
                      call_datetime="2026-11-18T15:00:00Z", call_channel="IN_PERSON", call_type="DETAIL",
                      products_detailed="FOLLIX;GANIRA", call_status="SUBMITTED", notes="met Dr Ruiz",
                      last_modified="2026-11-19T10:00:00+00:00"),
    "sfdc_territory": dict(territory_id="T01", territory_name="Boston", district_id="D01",
                           district_name="New England", region_id="R1", region_name="East", rep_id="R01",
                           rep_name="Sam Lee"),
    "product_master": dict(ndc11="12345678901", sap_material="FE-1001", brand_code="FOLLIX",
                           brand_name="Follix", molecule="follitropin alfa", market="FERTILITY",
                           manufacturer="FE Pharma", is_own_brand="true", units_per_pack="1"),
    "fx_rates": dict(rate_date="2026-11-20", base_currency="EUR", quote_currency="USD", rate="1.0512"),
    "sp_dispense": dict(dispense_id="700001", pharmacy_ncpdp="0312345", patient_token="0f" * 16,
                        prescriber_npi="1558598797", ndc11="12345678901", dispense_date="2026-11-19",
                        fill_type="NEW", quantity="1.5", days_supply="30", payer_type="COMMERCIAL",
                        copay_usd="25.00", status="DISPENSED", updated_at="2026-11-20T08:00:00Z"),
    "hcp_event": dict(attendance_id="AT-0000000001", event_id="EV-00000001", event_type="SPEAKER_PROGRAM",
                      event_date="2026-11-18", brand_code="FOLLIX", npi="1558598797", role="ATTENDEE",
                      attended="true", meal_value_usd="42.50", updated_at="2026-11-19T12:00:00Z"),
    "hcp_engagement": dict(event_id="6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b", occurred_at="2026-11-20T09:15:00Z",
                           channel="EMAIL", action="OPENED", npi="1558598797", account_id=ACCOUNT,
                           brand_code="FOLLIX", content_id="email_2026_11_follix-launch"),
}

CTX = RuleContext(DATA_DATE, lookups={"currency_code": frozenset({"USD", "GBP", "EUR"}),
                                      "products_detailed_allowed": frozenset({"FOLLIX", "GANIRA", "SOMAX", "PROGEL"})})

# (feed, rule, the changes that break it and nothing else)
BREAKS = [
    ("iqvia_rx", "prescriber_id_required", dict(prescriber_id=None)),
    ("iqvia_rx", "prescriber_id_format", dict(prescriber_id="12345678901")),
    ("iqvia_rx", "npi_check_digit", dict(npi="1234567890")),
    ("iqvia_rx", "ndc11_required", dict(ndc11=None)),
    ("iqvia_rx", "ndc11_format", dict(ndc11="12345-6789-01")),
    ("iqvia_rx", "week_ending_required", dict(week_ending=None)),
    ("iqvia_rx", "week_ending_type", dict(week_ending="2026-02-30")),
    ("iqvia_rx", "week_ending_friday", dict(week_ending="2026-11-19")),
    ("iqvia_rx", "not_future", dict(week_ending="2026-11-27")),
    ("iqvia_rx", "week_in_window", dict(week_ending="2026-08-21")),
    ("iqvia_rx", "payer_type_allowed", dict(payer_type="UNKNOWN")),
    ("iqvia_rx", "channel_allowed", dict(channel="WEB")),
    ("iqvia_rx", "nrx_type", dict(nrx="three")),
    ("iqvia_rx", "nrx_range", dict(nrx="-1", nbrx=None)),
    ("iqvia_rx", "trx_type", dict(trx="5.5")),
    ("iqvia_rx", "trx_range", dict(trx="-5", nrx=None)),
    ("iqvia_rx", "nbrx_type", dict(nbrx="x")),
    ("iqvia_rx", "nbrx_range", dict(nbrx="-1")),
    ("iqvia_rx", "nqty_type", dict(nqty="1,5")),
    ("iqvia_rx", "nqty_range", dict(nqty="-1")),
    ("iqvia_rx", "tqty_type", dict(tqty="abc")),
    ("iqvia_rx", "tqty_range", dict(tqty="-1", nqty=None)),
    ("iqvia_rx", "nbrx_le_nrx", dict(nbrx="4")),
    ("iqvia_rx", "trx_ge_nrx", dict(trx="2", nbrx="1")),
    ("iqvia_rx", "nqty_le_tqty", dict(nqty="61")),
    ("sap_billing", "billing_document_required", dict(billing_document=None)),
    ("sap_billing", "billing_document_format", dict(billing_document="900000001")),
    ("sap_billing", "billing_item_format", dict(billing_item="10")),
    ("sap_billing", "billing_type_allowed", dict(billing_type="ZZ")),
    ("sap_billing", "billing_date_type", dict(billing_date="20/11/2026")),
    ("sap_billing", "not_future", dict(billing_date="2026-11-21")),
    ("sap_billing", "sales_org_format", dict(sales_org="us01")),
    ("sap_billing", "sold_to_format", dict(sold_to="ABC")),
    ("sap_billing", "ship_to_required", dict(ship_to=None)),
    ("sap_billing", "material_format", dict(material="fe 1001")),
    ("sap_billing", "quantity_type", dict(quantity="ten")),
    ("sap_billing", "sales_unit_format", dict(sales_unit="E")),
    ("sap_billing", "net_value_type", dict(net_value="12O0")),
    ("sap_billing", "net_value_format", dict(net_value="1200.505")),
    ("sap_billing", "currency_code", dict(currency="XYZ")),
    ("sap_billing", "sign_by_billing_type", dict(billing_type="G2")),
    ("sfdc_account", "account_id_required", dict(account_id=None)),
    ("sfdc_account", "sfdc_id_format", dict(account_id=ACCOUNT[:17] + ("A" if ACCOUNT[17] != "A" else "B"))),
    ("sfdc_account", "npi_check_digit", dict(npi="1558598790")),
    ("sfdc_account", "first_name_required", dict(first_name=None)),
    ("sfdc_account", "specialty_allowed", dict(specialty="DERM")),
    ("sfdc_account", "email_format", dict(email="ana.ruiz at clinic")),
    ("sfdc_account", "state_allowed", dict(state="XX")),
    ("sfdc_account", "zip_format", dict(zip="2115")),
    ("sfdc_account", "territory_id_required", dict(territory_id=None)),
    ("sfdc_account", "pdrp_opt_out_type", dict(pdrp_opt_out="yes")),
    ("sfdc_account", "is_active_type", dict(is_active="1")),
    ("sfdc_account", "last_modified_type", dict(last_modified="2026-11-19 10:00")),
    ("sfdc_account", "not_future", dict(last_modified="2026-11-21T00:00:00Z")),
    ("sfdc_call", "call_id_required", dict(call_id=None)),
    ("sfdc_call", "sfdc_id_format", dict(call_id="a0C12")),
    ("sfdc_call", "rep_id_required", dict(rep_id=None)),
    ("sfdc_call", "call_datetime_type", dict(call_datetime="2026-11-18T15:00:00-05:00")),
    ("sfdc_call", "call_channel_allowed", dict(call_channel="FAX")),
    ("sfdc_call", "call_type_allowed", dict(call_type="LUNCH")),
    ("sfdc_call", "products_detailed_format", dict(products_detailed="FOLLIX;GANIRA;SOMAX;PROGEL")),
    ("sfdc_call", "products_detailed_allowed", dict(products_detailed="FOLLIX;NOPE")),
    ("sfdc_call", "call_status_allowed", dict(call_status="DONE")),
    ("sfdc_call", "submitted_not_after_modified", dict(call_datetime="2026-11-19T11:00:00Z")),
    ("sfdc_territory", "territory_name_required", dict(territory_name=None)),
    ("sfdc_territory", "region_id_required", dict(region_id=None)),
    ("product_master", "ndc11_format", dict(ndc11="1234567890")),
    ("product_master", "brand_code_format", dict(brand_code="follix")),
    ("product_master", "market_allowed", dict(market="ONCOLOGY")),
    ("product_master", "is_own_brand_type", dict(is_own_brand="Y")),
    ("product_master", "units_per_pack_type", dict(units_per_pack="1.5")),
    ("product_master", "units_per_pack_range", dict(units_per_pack="0")),
    ("fx_rates", "rate_range", dict(rate="0")),
    ("fx_rates", "rate_type", dict(rate="1,05")),
    ("fx_rates", "quote_currency_format", dict(quote_currency="usd")),
    ("fx_rates", "not_future", dict(rate_date="2026-11-23")),
    ("sp_dispense", "dispense_id_range", dict(dispense_id="0")),
    ("sp_dispense", "pharmacy_ncpdp_format", dict(pharmacy_ncpdp="312345")),
    ("sp_dispense", "patient_token_format", dict(patient_token="0F" * 16)),
    ("sp_dispense", "npi_check_digit", dict(prescriber_npi="1558598790")),
    ("sp_dispense", "fill_type_allowed", dict(fill_type="TRANSFER")),
    ("sp_dispense", "quantity_range", dict(quantity="0")),
    ("sp_dispense", "days_supply_range", dict(days_supply="91")),
    ("sp_dispense", "copay_usd_range", dict(copay_usd="-1.00")),
    ("sp_dispense", "status_allowed", dict(status="VOID")),
    ("sp_dispense", "updated_after_dispense", dict(updated_at="2026-11-18T23:59:59Z")),
    ("sp_dispense", "not_future", dict(dispense_date="2026-11-21", updated_at="2026-11-21T01:00:00Z")),
    ("hcp_event", "attendance_id_format", dict(attendance_id="AT-123")),
    ("hcp_event", "event_id_format", dict(event_id="EV-1")),
    ("hcp_event", "event_type_allowed", dict(event_type="DINNER")),
    ("hcp_event", "npi_required", dict(npi=None)),
    ("hcp_event", "role_allowed", dict(role="HOST")),
    ("hcp_event", "attended_type", dict(attended="yes")),
    ("hcp_event", "meal_value_usd_range", dict(meal_value_usd="-5.00")),
    ("hcp_event", "meal_value_usd_format", dict(meal_value_usd="5.001")),
    ("hcp_event", "updated_at_required", dict(updated_at=None)),
    ("hcp_engagement", "event_id_format", dict(event_id="not-a-uuid")),
    ("hcp_engagement", "not_future", dict(occurred_at="2026-11-21T00:00:01Z")),
    ("hcp_engagement", "channel_allowed", dict(channel="SMS")),
    ("hcp_engagement", "action_fits_channel", dict(channel="WEBINAR", action="OPENED")),
    ("hcp_engagement", "sfdc_id_format", dict(account_id="001Dn00000AbCdE")),
    ("hcp_engagement", "hcp_identified", dict(npi=None, account_id=None)),
    ("hcp_engagement", "content_id_format", dict(content_id="has space")),
    ("hcp_engagement", "brand_code_required", dict(brand_code=None)),
]


def reasons(feed_name: str, rows: list[dict], ctx: RuleContext = CTX) -> list[str]:
    feed = FEEDS[feed_name]
    frame = pd.DataFrame(rows, columns=feed.source_columns, dtype="str")
    if feed.quarantines_records:
        frame[rules.RECORD_TEXT] = pd.Series([None] * len(frame), dtype="str")
    return check_chunk(build_schema(feed, ctx), frame).reindex(range(len(frame)), fill_value="").tolist()


@pytest.mark.parametrize("feed_name", sorted(CLEAN))
def test_clean_row_passes_every_rule(feed_name):
    assert reasons(feed_name, [CLEAN[feed_name]]) == [""]


@pytest.mark.parametrize("feed_name,rule,changes", BREAKS, ids=[f"{f}:{r}" for f, r, _ in BREAKS])
def test_broken_row_fails_exactly_its_rule(feed_name, rule, changes):
    assert rule in rule_names(FEEDS[feed_name])
    row = {**CLEAN[feed_name], **changes}
    assert reasons(feed_name, [CLEAN[feed_name], row]) == ["", rule]


def repeated(feed_name: str, rows: list[dict]) -> RuleContext:
    feed = FEEDS[feed_name]
    hashes = key_hashes(pd.DataFrame(rows, columns=feed.source_columns, dtype="str"), feed.key)
    values, counts = np.unique(hashes, return_counts=True)
    return RuleContext(DATA_DATE, lookups=CTX.lookups, duplicate_key_hashes=values[counts > 1])


@pytest.mark.parametrize("feed_name", ["iqvia_rx", "sap_billing", "sfdc_account", "sfdc_call", "sp_dispense",
                                       "hcp_event"])
def test_every_row_of_a_repeated_key_is_quarantined(feed_name):
    rows = [CLEAN[feed_name]] * 2
    assert reasons(feed_name, rows, repeated(feed_name, rows)) == ["duplicate_key", "duplicate_key"]


def test_a_stream_keeps_the_first_occurrence_of_a_repeated_event():
    other = dict(CLEAN["hcp_engagement"], event_id="11111111-2222-4333-8444-555555555555")
    rows = [CLEAN["hcp_engagement"], other, CLEAN["hcp_engagement"], CLEAN["hcp_engagement"]]
    assert reasons("hcp_engagement", rows, repeated("hcp_engagement", rows)) == [
        "", "", "duplicate_key", "duplicate_key"]


def test_unique_columns_use_their_contract_names():
    assert FEEDS["sfdc_territory"].key_rule in rule_names(FEEDS["sfdc_territory"])
    assert "ndc11_unique" in rule_names(FEEDS["product_master"])


def test_a_row_keeps_every_reason_it_breaks():
    row = {**CLEAN["iqvia_rx"], "npi": "1234567890", "payer_type": "UNKNOWN", "nrx": "three"}
    assert reasons("iqvia_rx", [row]) == ["npi_check_digit;payer_type_allowed;nrx_type"]


def test_null_in_a_nullable_column_breaks_nothing():
    row = {**CLEAN["sfdc_account"], "npi": None, "email": None, "phone": None}
    assert reasons("sfdc_account", [row]) == [""]


def test_sign_by_billing_type_for_credit_memos():
    credit = {**CLEAN["sap_billing"], "billing_type": "G2", "quantity": "-10", "net_value": "-1200.50"}
    assert reasons("sap_billing", [credit]) == [""]
    mixed = {**credit, "quantity": "10"}
    assert reasons("sap_billing", [mixed]) == ["sign_by_billing_type"]


def test_eur_is_always_a_known_currency():
    assert reasons("sap_billing", [{**CLEAN["sap_billing"], "currency": "EUR"}]) == [""]


def test_identifier_check_digits_match_the_contract_examples():
    assert is_valid_npi("1234567893") and is_valid_npi("1558598797")
    assert not is_valid_npi("1234567890") and not is_valid_npi("3234567893")
    assert npi_check_digit("123456789") == 3
    assert is_valid_sfdc_id(ACCOUNT) and not is_valid_sfdc_id(ACCOUNT.lower())


def test_a_rule_that_raises_fails_the_check_instead_of_passing_every_row(monkeypatch):
    def broken(s):
        raise ValueError(f"a bug in a rule, quoting {s.iloc[0]}")

    monkeypatch.setattr(rules, "npi_check_digit", broken)
    with pytest.raises(RuntimeError, match="npi_check_digit of iqvia_rx raised ValueError") as raised:
        reasons("iqvia_rx", [CLEAN["iqvia_rx"]])
    assert CLEAN["iqvia_rx"]["npi"] not in str(raised.value) and raised.value.__cause__ is None


def test_rules_sharing_work_in_a_chunk_give_the_verdicts_they_give_alone():
    feed = FEEDS["iqvia_rx"]
    rows = [{**CLEAN["iqvia_rx"], **changes} for name, _, changes in BREAKS if name == "iqvia_rx"]
    schema = build_schema(feed, CTX)
    for dtype in ("str", object):  # an object column gives a new array on every access: nothing to share
        frame = pd.DataFrame(rows, columns=feed.source_columns, dtype=dtype)
        alone = check_chunk(schema, frame).tolist()
        for _ in range(5):
            with chunk_scope():
                assert check_chunk(schema, frame).tolist() == alone
