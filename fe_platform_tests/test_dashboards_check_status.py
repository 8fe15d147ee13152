"""The data-quality status of a dashboard from check results (pure logic), and times in words."""

from __future__ import annotations

import datetime as dt

from fe_platform.lib.dashboards.check_status import (
    CheckResult,
    FailingCheck,
    QualityStatus,
    merge,
    summarize,
    worst,
)
from fe_platform.lib.dashboards.times import day, span, when

T = dt.datetime(2026, 11, 20, 8, 5, 59, 123456, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 1, 21, 14, tzinfo=dt.UTC)


def result(check: str, partition: str | None, passed: bool, severity: str = "ERROR", hours: int = 0,
           completed: bool = True) -> CheckResult:
    return CheckResult(check, partition, passed, severity, T + dt.timedelta(hours=hours), completed)


def test_worst_of_levels():
    assert worst([]) == "OK"
    assert worst(["OK", "WARN", "OK"]) == "WARN"
    assert worst(["WARN", "ERROR", "OK"]) == "ERROR"


def test_all_passing_is_ok_and_counts_checks_and_results():
    status = summarize([result("validated_iqvia_rx:row_conservation", p, True) for p in ("2026-11-13", "2026-11-20")]
                       + [result("reporting/rpt_brand_weekly:not_null_rpt_brand_weekly_brand_code", None, True)])
    assert (status.level, status.checks, status.results, status.failing) == ("OK", 2, 3, ())
    assert status.headline == "OK"


def test_no_results_is_unknown_not_ok():
    status = summarize([])
    assert status.level == "UNKNOWN" and status.headline == "No checks run yet"


def test_one_error_anywhere_makes_the_status_error_and_is_named_first():
    status = summarize([
        result("validated_iqvia_rx:npi_in_sfdc_account", "2026-11-13", False, "WARN"),
        result("validated_iqvia_rx:npi_in_sfdc_account", "2026-11-20", False, "WARN", hours=2),
        result("validated_iqvia_rx:npi_in_sfdc_account", "2026-11-06", True),
        result("validated_fx_rates:quarantine_by_rule", "2026-11-03", False, "ERROR", hours=1),
        result("validated_fx_rates:quarantine_by_rule", "2026-11-04", False, "WARN", hours=3),
        result("validated_fx_rates:schema_drift", "2026-11-04", True),
        result("marts/dim_hcp:unique_dim_hcp_hcp_key", None, False, "WARN"),
    ])
    assert status.level == "ERROR"
    assert status.headline == "ERROR: 1 check failing, 2 warning"
    assert [(f.check, f.level) for f in status.failing] == [
        ("validated_fx_rates:quarantine_by_rule", "ERROR"),  # errors first, then by name
        ("marts/dim_hcp:unique_dim_hcp_hcp_key", "WARN"),
        ("validated_iqvia_rx:npi_in_sfdc_account", "WARN"),
    ]
    fx = status.failing[0]
    assert fx.asset == "validated_fx_rates" and fx.name == "quarantine_by_rule"
    assert fx.failed_partitions == ("2026-11-04", "2026-11-03")  # latest first
    assert fx.partitions_evaluated == 2 and fx.last_failed_at == T + dt.timedelta(hours=3)
    npi = status.failing[2]
    assert npi.failed_partitions == ("2026-11-20", "2026-11-13") and npi.partitions_evaluated == 3
    assert status.failing[1].failed_partitions == ()  # unpartitioned


def test_a_check_that_did_not_complete_is_an_error():
    status = summarize([result("validated_sap_billing:row_conservation", "2026-11-20", False, "WARN",
                               completed=False)])
    assert status.level == "ERROR" and status.failing[0].not_completed == 1


def test_status_survives_its_json_round_trip():
    status = summarize([result("validated_fx_rates:quarantine_by_rule", "2026-11-03", False),
                        result("validated_fx_rates:row_conservation", "2026-11-03", True)])
    again = QualityStatus.from_json(status.to_json())
    assert again == status and status.to_json()["headline"] == "ERROR: 1 check failing"


def test_merge_names_each_failing_check_once_with_the_dashboards_it_affects():
    older = FailingCheck("validated_fx_rates:quarantine_by_rule", "WARN", ("2026-11-03",), 3, T)
    newer = FailingCheck("validated_fx_rates:quarantine_by_rule", "ERROR", ("2026-11-04", "2026-11-03"), 3,
                         T + dt.timedelta(hours=1))
    other = FailingCheck("validated_iqvia_rx:schema_drift", "WARN", ("2026-11-20",), 2, T)
    merged = merge({
        "Brand Performance": QualityStatus("WARN", 5, 9, (older, other)),
        "Market Share": QualityStatus("ERROR", 5, 9, (newer,)),
        "Data Quality": QualityStatus("OK", 5, 9),
    })
    assert merged == [(newer, ["Brand Performance", "Market Share"]), (other, ["Brand Performance"])]


def test_times_in_words():
    assert when(T, now=NOW) == "Fri 20 Nov, 08:05 UTC"
    assert when(T.isoformat(), now=NOW) == "Fri 20 Nov, 08:05 UTC"  # as stored in a status file
    assert when("2025-12-01T21:14:00.123456+00:00", now=NOW) == "Mon 1 Dec 2025, 21:14 UTC"
    assert when(dt.datetime(2026, 12, 1, 22, 14, tzinfo=dt.timezone(dt.timedelta(hours=1))), now=NOW) \
        == "Tue 1 Dec, 21:14 UTC"
    assert when(dt.datetime(2026, 12, 1, 21, 14), now=NOW) == "Tue 1 Dec, 21:14 UTC"  # naive: UTC
    assert day(dt.date(2026, 11, 13)) == "13 Nov 2026" and day("2026-01-02") == "2 Jan 2026"
    assert span(dt.date(2026, 8, 21), dt.date(2026, 11, 13)) == "21 Aug to 13 Nov 2026"
    assert span(dt.date(2025, 12, 26), dt.date(2026, 1, 2)) == "26 Dec 2025 to 2 Jan 2026"
    assert span(dt.date(2026, 11, 13), dt.date(2026, 11, 13)) == "13 Nov 2026"
