"""`fe-platform run` makes ingestion runs side by side in forked children: order, slots, what comes back, and a
child that dies. The runs here are small functions in place of Dagster jobs; the end-to-end tests make real ones."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from fe_platform.lib.feeds import FEEDS
from fe_platform.runner.report import Delivery, RunOutcome
from fe_platform.runner.side_by_side import IngestionRun, run_side_by_side, run_slots, waits_for

WAIT_SECONDS = 60  # how long a run waits for a sign of another: only reached when they do not overlap


def journal(path: Path, line: str) -> None:
    with open(path, "a") as f:  # one append per line: the children's lines do not interleave
        f.write(line + "\n")


def entries(path: Path) -> list[str]:
    return path.read_text().splitlines()


def ingestion_run(feed: str, n: int, log: Path, meets: str | None = None) -> IngestionRun:
    """A run that journals its start and end, tells one delivery, and, with `meets`, waits until that run started
    (which it only does when both are at work at once)."""
    label = f"{feed}-{n}"

    def make(tell) -> RunOutcome:
        journal(log, f"start {label} {os.getpid()}")
        if meets:
            deadline = time.monotonic() + WAIT_SECONDS
            while f"start {meets}" not in " ".join(entries(log)):
                assert time.monotonic() < deadline, f"{label} never ran beside {meets}"
                time.sleep(0.02)
        tell(Delivery(feed, f"landing/{feed}/{label}.csv", "loaded", rows_in=n))
        journal(log, f"end {label}")
        return RunOutcome(True, materialized=[f"validated_{feed}"], checks_passed=n)

    return IngestionRun(FEEDS[feed], label, make_new_run_id(), make)


def run_all(runs, slots, instance):
    delivered, outcomes = [], {}
    run_side_by_side(runs, slots, instance, delivered.append,
                     lambda run, outcome: outcomes.update({run.label: outcome}))
    return delivered, outcomes


def test_independent_feeds_run_at_once_and_everything_comes_back(tmp_path):
    log = tmp_path / "journal"
    runs = [ingestion_run("sfdc_territory", 1, log, meets="fx_rates-2"),
            ingestion_run("fx_rates", 2, log, meets="sfdc_territory-1")]
    with dg.instance_for_test() as instance:
        delivered, outcomes = run_all(runs, 2, instance)
    assert sorted(d.landing_key for d in delivered) == ["landing/fx_rates/fx_rates-2.csv",
                                                        "landing/sfdc_territory/sfdc_territory-1.csv"]
    assert outcomes == {"sfdc_territory-1": RunOutcome(True, ["validated_sfdc_territory"], 1),
                        "fx_rates-2": RunOutcome(True, ["validated_fx_rates"], 2)}
    pids = {line.split()[2] for line in entries(log) if line.startswith("start")}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each in a child of its own


def test_a_feed_waits_for_its_own_earlier_runs_and_its_reference_data(tmp_path):
    log = tmp_path / "journal"
    # sap_billing reads product master and FX rates: both feeds' runs end before its first starts; its two
    # batches go in order; and the slots bound how many are at work
    runs = [ingestion_run("product_master", 1, log), ingestion_run("fx_rates", 2, log),
            ingestion_run("fx_rates", 3, log), ingestion_run("sap_billing", 4, log),
            ingestion_run("sap_billing", 5, log), ingestion_run("sfdc_territory", 6, log)]
    with dg.instance_for_test() as instance:
        _, outcomes = run_all(runs, 2, instance)
    assert len(outcomes) == 6 and all(o.success for o in outcomes.values())
    order = [line.rsplit(" ", 1)[0] if line.startswith("start") else line for line in entries(log)]
    position = {line: i for i, line in enumerate(order)}
    for reference in ("product_master-1", "fx_rates-2", "fx_rates-3"):
        assert position[f"end {reference}"] < position["start sap_billing-4"]
    assert position["end fx_rates-2"] < position["start fx_rates-3"]
    assert position["end sap_billing-4"] < position["start sap_billing-5"]
    at_work = 0
    for line in order:
        at_work += 1 if line.startswith("start") else -1
        assert at_work <= 2


def test_waiting_follows_the_feeds_reference_data():
    def run(feed):
        return IngestionRun(FEEDS[feed], feed, "id", lambda tell: RunOutcome(True))

    assert waits_for(run("iqvia_rx"), [run("sfdc_account")])  # its NPIs are checked against the accounts
    assert waits_for(run("iqvia_rx"), [run("iqvia_rx")])
    assert not waits_for(run("iqvia_rx"), [run("hcp_event"), run("fx_rates")])
    assert not waits_for(run("product_master"), [run("iqvia_rx")])


def test_a_child_that_dies_fails_its_run_and_the_others_go_on(tmp_path):
    log = tmp_path / "journal"

    def dies(tell) -> RunOutcome:
        tell(Delivery("sfdc_call", "landing/sfdc_call/first.csv", "loaded"))
        os._exit(3)  # killed mid-run: no outcome, no clean up

    with dg.instance_for_test() as instance:
        dying = IngestionRun(FEEDS["sfdc_call"], "sfdc_call-1", make_new_run_id(), dies)
        instance.add_run(DagsterRun(job_name="ingest_sfdc_call_job", run_id=dying.run_id,
                                    status=DagsterRunStatus.STARTED))
        delivered, outcomes = run_all([dying, ingestion_run("hcp_event", 2, log)], 2, instance)
        assert instance.get_run_by_id(dying.run_id).status == DagsterRunStatus.FAILURE
    assert not outcomes["sfdc_call-1"].success and "exit code 3" in outcomes["sfdc_call-1"].reason
    assert outcomes["hcp_event-2"].success
    assert [d.landing_key for d in delivered if d.feed == "sfdc_call"] == ["landing/sfdc_call/first.csv"]


def test_an_error_in_a_child_is_its_runs_failure(tmp_path):
    def raises(tell) -> RunOutcome:
        raise OSError("No space left on device")

    with dg.instance_for_test() as instance:
        _, outcomes = run_all([IngestionRun(FEEDS["sfdc_call"], "sfdc_call-1", make_new_run_id(), raises)], 1,
                              instance)
    assert outcomes["sfdc_call-1"] == RunOutcome(False, reason="OSError: No space left on device")


@pytest.mark.parametrize(("limit", "expected"), [(1, 1), (2, 2), (64, os.cpu_count()), (-1, os.cpu_count())])
def test_slots_are_the_run_queues_limit_at_most_one_per_core(limit, expected):
    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                                     "config": {"max_concurrent_runs": limit}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert run_slots(instance) == min(expected, os.cpu_count())
    assert run_slots(dg.DagsterInstance.ephemeral()) == 1  # a forked process could not write to it
