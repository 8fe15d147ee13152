"""The command line: `generate`, `demo` (its generation step) and `run`'s exit code."""

import json

import pytest

from fe_platform import cli
from fe_platform.runner import RunSummary


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FE_HOME", str(tmp_path))
    return tmp_path


def test_generate_writes_landing_and_the_manifest(home, capsys):
    assert cli.main(["generate", "--weeks", "1", "--hcps", "20", "--end-friday", "2026-11-20"]) == 0
    manifest = json.loads((home / "sample_manifest.json").read_text())
    assert manifest["args"]["weeks"] == 1
    assert all((home / "lake" / f["key"]).exists() for f in manifest["files"])
    assert "landing files" in capsys.readouterr().out


def test_demo_generates_when_landing_is_empty_then_runs(home, monkeypatch):
    ran = []
    monkeypatch.setattr(cli, "cmd_run", lambda settings, args: ran.append(settings.home) or 0)
    assert cli.main(["demo", "--weeks", "1", "--hcps", "20", "--end-friday", "2026-11-20"]) == 0
    assert ran == [home] and (home / "sample_manifest.json").exists()
    first = (home / "sample_manifest.json").stat().st_mtime_ns
    assert cli.main(["demo", "--weeks", "1", "--hcps", "20"]) == 0  # landing holds files: no new generation
    assert (home / "sample_manifest.json").stat().st_mtime_ns == first and len(ran) == 2


@pytest.mark.parametrize("failed,code", [([], 0), (["ingest landing/x"], 1)])
def test_run_exits_non_zero_when_a_step_failed(home, monkeypatch, capsys, failed, code):
    monkeypatch.setattr("fe_platform.runner.run_platform",
                        lambda settings, echo, wait_seconds=0: RunSummary(failed_runs=failed))
    assert cli.main(["run"]) == code
    assert ("FAILED: ingest landing/x" in capsys.readouterr().out) == bool(failed)


def test_large_iqvia_file(home, tmp_path):
    assert cli.main(["generate", "--large-iqvia", "1000", "--out", str(tmp_path / "big"),
                     "--end-friday", "2026-11-20"]) == 0
    assert len((tmp_path / "big" / "RXDYN_WEEKLY_20261120.txt").read_text().splitlines()) == 1001


def test_sql_answers_over_the_lake_with_the_catalog_names_and_nothing_else(home, capsys):
    from fe_platform.lib.ingestion import ingest_landing_file
    from fe_platform.lib.lake import LocalLake
    from fe_platform_tests.test_ingestion import CLEAN, delimited, iqvia_rows, land

    lake = LocalLake(home / "lake")
    rows = iqvia_rows(3) + [dict(CLEAN["iqvia_rx"], prescriber_id="9", payer_type="UNKNOWN")]
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", rows))
    ingest_landing_file(lake, key, "k" * 20)
    query = ("select partition, count(*) as n, (select count(*) from quarantine_iqvia_rx) as q, "
             "(select max(outcome) from deliveries) as outcome from iqvia_rx group by 1")
    assert cli.main(["sql", "--json", query]) == 0
    assert json.loads(capsys.readouterr().out) == [{"partition": "2026-11-20", "n": 3, "q": 1, "outcome": "loaded"}]
    assert cli.main(["sql", "select * from read_csv('/etc/passwd')"]) == 1
    assert "disabled" in capsys.readouterr().err


def test_the_summary_reads_each_delivery_record_once(home, monkeypatch):
    """A run's summary counts the whole delivery log; a record never changes, so a run with nothing new reads
    none of them again (it read every one, about a second and a half on the demo's 491)."""
    from fe_platform.lib import delivery_log
    from fe_platform.lib.ingestion import ingest_landing_file
    from fe_platform.lib.lake import LocalLake
    from fe_platform.runner import lake_lines
    from fe_platform.settings import load_settings
    from fe_platform_tests.test_ingestion import CLEAN, delimited, iqvia_rows, land

    settings = load_settings({"FE_HOME": str(home)})
    lake = LocalLake(home / "lake")
    bad = dict(CLEAN["iqvia_rx"], prescriber_id="9", payer_type="UNKNOWN")
    ingest_landing_file(lake, land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt",
                                   delimited("iqvia_rx", iqvia_rows(3) + [bad])), "k" * 20)
    def iqvia_line(lines):
        return next(line.split() for line in lines if line.split()[0] == "iqvia_rx")

    first = lake_lines(settings, lake)
    assert iqvia_line(first) == ["iqvia_rx", "1", "0", "0", "4", "3", "1"]

    real = delivery_log.read_records
    read = []
    monkeypatch.setattr(delivery_log, "read_records", lambda lake_, entries: read.extend(entries) or
                        real(lake_, entries))
    assert lake_lines(settings, lake) == first and read == []
    ingest_landing_file(lake, land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt",
                                   delimited("iqvia_rx", iqvia_rows(2))), "k" * 20)
    assert iqvia_line(lake_lines(settings, lake)) == ["iqvia_rx", "2", "0", "0", "6", "5", "1"]
    assert len(read) == 1
