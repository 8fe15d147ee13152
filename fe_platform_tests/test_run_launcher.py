"""The local run launcher (dagster.yaml): runs forked from a warm process that loaded their code location once."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import dagster as dg
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext, WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

from fe_platform.run_launcher import WORKER_TAG, ForkingRunLauncher
from fe_platform.settings import PROJECT_ROOT
from fe_platform_tests.locations import runs_location

MODULE = "fe_platform_tests.locations.runs_location"


@pytest.fixture
def instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("FE_TEST_STARTED", str(tmp_path / "started"))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_launcher, ForkingRunLauncher)
        yield instance
        instance.run_launcher.dispose()


def launch(instance, job_name: str, origin_job: str | None = None) -> str:
    origin = JobPythonOrigin(origin_job or job_name, RepositoryPythonOrigin(
        sys.executable, ModuleCodePointer(MODULE, "defs", str(PROJECT_ROOT))))
    run = instance.create_run_for_job(runs_location.defs.resolve_job_def(job_name), job_code_origin=origin)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run.run_id


def finished(instance, run_id: str, timeout: float = 60) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not finish")


def worker_and_warm_pids(instance, run_id: str) -> tuple[int, int]:
    metadata = instance.get_latest_materialization_event(dg.AssetKey("quick")).asset_materialization.metadata
    assert instance.get_latest_materialization_event(dg.AssetKey("quick")).run_id == run_id
    return metadata["worker_pid"].value, metadata["warm_pid"].value


def test_runs_are_forked_from_one_warm_process_started_again_when_the_code_changes(instance, monkeypatch):
    from fe_platform import code

    first = launch(instance, "quick_job")
    assert finished(instance, first).status == dg.DagsterRunStatus.SUCCESS
    worker, warm = worker_and_warm_pids(instance, first)
    second = launch(instance, "quick_job")
    assert finished(instance, second).status == dg.DagsterRunStatus.SUCCESS
    assert worker_and_warm_pids(instance, second)[1] == warm != os.getpid()  # the same warm process
    assert worker_and_warm_pids(instance, second)[0] not in (worker, warm)  # a worker of its own
    tagged = instance.get_run_by_id(second).tags[WORKER_TAG]  # "<pid>:<start time>"
    assert tagged.split(":")[0] == str(worker_and_warm_pids(instance, second)[0]) and tagged.split(":")[1]

    monkeypatch.setattr(code, "code_version", lambda: "the code after an edit")
    third = launch(instance, "quick_job")
    assert finished(instance, third).status == dg.DagsterRunStatus.SUCCESS
    assert worker_and_warm_pids(instance, third)[1] != warm  # a warm process of the new code


def wait_started(started_file, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not started_file.exists() or not started_file.read_text():
        assert time.monotonic() < deadline, "the run's step did not start"
        time.sleep(0.2)
    return int(started_file.read_text())


def test_a_run_is_terminated_and_a_killed_worker_is_seen_gone(instance, tmp_path):
    started = tmp_path / "started"
    run_id = launch(instance, "slow_job")
    wait_started(started)
    assert instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run_id)).status == \
        WorkerStatus.RUNNING
    assert instance.run_launcher.terminate(run_id)
    assert finished(instance, run_id).status == dg.DagsterRunStatus.CANCELED

    started.unlink()
    killed = launch(instance, "slow_job")
    os.kill(wait_started(started), signal.SIGKILL)  # out of memory, say
    deadline = time.monotonic() + 10
    while instance.run_launcher.check_run_worker_health(instance.get_run_by_id(killed)).status != \
            WorkerStatus.FAILED:
        assert time.monotonic() < deadline, "the killed worker is still seen running"
        time.sleep(0.2)
    assert not instance.run_launcher.terminate(killed)  # nothing left to stop



def test_a_run_its_worker_cannot_start_fails_at_once_naming_why(instance):
    run_id = launch(instance, "quick_job", origin_job="a_job_the_code_no_longer_has")
    run = finished(instance, run_id, timeout=30)  # not after run monitoring's start timeout (3 minutes)
    assert run.status == dg.DagsterRunStatus.FAILURE
    errors = [e.dagster_event.engine_event_data.error for e in instance.all_logs(run_id)
              if e.dagster_event and e.dagster_event.event_type_value == "ENGINE_EVENT"]
    assert any(error and "a_job_the_code_no_longer_has" in error.message for error in errors)
    assert finished(instance, launch(instance, "quick_job")).status == dg.DagsterRunStatus.SUCCESS  # and runs go on
