"""Local runs forked from a warm process: the embedded default's run launcher (dagster.yaml).

Dagster's default launcher asks the code server to start each run, and the code server spawns a fresh
interpreter that imports Dagster and builds the platform's definitions again: seconds of start-up before any
work, for every run, and the daemon starts many short runs. Here a warm process, started at the first launch,
has imported the run's code location (and the libraries runs use) once, and each run is a fork of it.

- The warm process forks from its one Python thread, reading its input.
- It is started again when the platform's code changes: a code location reloaded in the UI runs the new code.
- It ends when the process that started it does (its input closes); the runs it forked go on, as the code
  server's would.
- A run goes through Dagster's own run-worker body (`dagster api execute_run`): the same events, cancellation
  and failure handling as a run the code server starts. The launcher sees whether a run's worker is alive, so
  run monitoring fails a killed run at its next check rather than after its maximum runtime.

ECS runs have their own launcher (dagster.aws.yaml).

    python -m fe_platform.run_launcher MODULE    # the warm process: reads run ids, forks, answers pids
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData

WORKER_TAG = "fe_platform/run_worker"  # "<pid>:<start time>": the pid alone could name a later process
WARM_IMPORTS = ("pandas", "pyarrow.parquet", "pandera.pandas", "dagster._core.execution.api",
                "dagster._core.storage.event_log")  # what every run would otherwise import after the fork
ANSWER_WITHIN = 300  # seconds for a warm process to fork a run, its first start (the code location's load) included


def code_location(run: DagsterRun) -> tuple[str, str, str | None]:
    """The Python, module and working directory of the run's code location (workspace.yaml loads the platform
    as a Python module)."""
    origin = run.job_code_origin.repository_origin if run.job_code_origin else None
    module = getattr(origin.code_pointer, "module", None) if origin else None
    if not module:
        raise DagsterLaunchFailedError(f"run {run.run_id}: its code location is not a Python module; this launcher "
                                       f"forks runs of modules only")
    return origin.executable_path or sys.executable, module, getattr(origin.code_pointer, "working_directory", None)


def worker_tag(pid: int) -> str:
    return f"{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str | None:
    """The process's start time (in clock ticks after boot), None if it is gone or a zombie. Linux's /proc."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _worker(run: DagsterRun) -> int | None:
    """The pid of the run's worker while that process lives."""
    pid, _, started = run.tags.get(WORKER_TAG, "").partition(":")
    return int(pid) if pid.isdigit() and started and _start_time(int(pid)) == started else None


class ForkingRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._warm: dict[tuple, tuple[subprocess.Popen, str]] = {}  # code location -> warm process, code version
        self._lock = threading.Lock()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster_shared.serdes import serialize_value

        run = context.dagster_run
        location = code_location(run)
        with self._lock:
            warm = self._warm_process(location)
            try:
                warm.stdin.write(f"{run.run_id} {serialize_value(self._instance.get_ref())}\n")
                warm.stdin.flush()
                answer = _readline(warm, ANSWER_WITHIN).split()
            except (OSError, ValueError, TimeoutError) as exc:
                answer = [f"{type(exc).__name__}: {exc}"]
            if len(answer) != 2 or answer[0] != run.run_id or not answer[1].isdigit():
                self._stop(self._warm.pop(location)[0])  # out of step: the next launch starts a new one
                raise DagsterLaunchFailedError(f"the warm process of {location[1]} (pid {warm.pid}) did not fork run "
                                               f"{run.run_id} ({' '.join(answer) or 'it ended'}): its error is in "
                                               f"this process's output")
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: worker_tag(int(answer[1]))})
        self._instance.report_engine_event(f"Forked the run worker (pid {answer[1]}) from the warm process of "
                                           f"{location[1]} (pid {warm.pid}).", run)

    def _warm_process(self, location: tuple[str, str, str | None]) -> subprocess.Popen:
        from fe_platform.code import code_version

        version = code_version()
        warm, made_from = self._warm.get(location, (None, None))
        if warm is not None and (warm.poll() is not None or made_from != version):
            self._stop(warm)
            warm = None
        if warm is None:
            python, module, working_directory = location
            warm = subprocess.Popen([python, "-m", __name__, module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=working_directory)
            self._warm[location] = (warm, version)
        return warm

    @staticmethod
    def _stop(warm: subprocess.Popen) -> None:
        """It ends at the end of its input; the runs it forked go on."""
        for pipe in (warm.stdin, warm.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            warm.wait(10)
        except subprocess.TimeoutExpired:
            warm.kill()
            warm.wait()

    def dispose(self) -> None:
        with self._lock:
            for warm, _ in self._warm.values():
                self._stop(warm)
            self._warm.clear()

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        pid = _worker(run) if run is not None and not run.is_finished else None
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGINT)  # the run worker's interrupt: Dagster cancels the run
        except OSError:  # it ended meanwhile
            return False
        self._instance.report_run_canceling(run)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if WORKER_TAG not in run.tags:  # not forked by this launcher (or not tagged yet): nothing to tell
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        if _worker(run) is not None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"its run worker ({run.tags[WORKER_TAG]}) is gone")


def _readline(warm: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not select.select([warm.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer in {timeout} s")
    return warm.stdout.readline()


def _execute(run_id: str, instance_ref: str) -> int:
    """In the forked child: the run, as `dagster api execute_run` makes it."""
    import dagster as dg
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance.ref import InstanceRef
    from dagster._utils.interrupts import capture_interrupts
    from dagster_shared.serdes import deserialize_value

    with capture_interrupts(), dg.DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef)) as instance:
        try:
            instance.add_run_tags(run_id, {WORKER_TAG: worker_tag(os.getpid())})  # before the run says it started
            return _execute_run_command_body(run_id, instance, write_stream_fn=lambda _: None,
                                             set_exit_code_on_failure=False) or 0
        except BaseException as exc:  # before Dagster's own handling: the run would wait for its start timeout
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_failed(run, f"its run worker could not run it: {type(exc).__name__}: {exc}")
            raise


def serve(module: str) -> None:
    """The warm process: import `module` and build its definitions once, then fork a run worker per line
    ("<run id> <instance ref>") read from stdin, answering "<run id> <pid>"."""
    import importlib
    import traceback

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever prints (an import, a subprocess) goes where errors go, never into the answers
    loaded = importlib.import_module(module)
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    defs = getattr(loaded, "defs", None)
    if defs is not None and hasattr(defs, "get_repository_def"):
        defs.get_repository_def()  # resolved once, not in every run
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the finished runs
    for line in sys.stdin:
        run_id, _, instance_ref = line.strip().partition(" ")
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a run waits for its own subprocesses (dbt)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            answers.close()
            code = 1
            try:
                code = _execute(run_id, instance_ref)
            except BaseException:  # noqa: BLE001 (told above, and here in full)
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(run_id, pid, file=answers, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
