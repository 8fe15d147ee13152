"""Local runs forked from a warm process: the embedded default's run launcher (dagster.yaml).

Dagster's default launcher asks the code server to start each run, and the code server spawns a fresh
interpreter that imports Dagster and builds the platform's definitions again: seconds of start-up before any
work, for every run, and the daemon starts many short runs. Here a warm process, started at the first launch,
has imported the run's code location (and the libraries runs use) once, and each run is a fork of it.

- The warm process is single-threaded, so forking it is safe.
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
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData

WORKER_PID_TAG = "fe_platform/run_worker_pid"
WARM_IMPORTS = ("pandas", "pyarrow.parquet", "pandera.pandas", "dagster._core.execution.api",
                "dagster._core.storage.event_log")  # what every run would otherwise import after the fork


def code_module(run: DagsterRun) -> str:
    """The module of the run's code location (workspace.yaml loads the platform as a Python module)."""
    pointer = run.job_code_origin.repository_origin.code_pointer if run.job_code_origin else None
    module = getattr(pointer, "module", None)
    if not module:
        raise DagsterLaunchFailedError(f"run {run.run_id}: its code location is not a Python module "
                                       f"({type(pointer).__name__}); this launcher forks runs of modules only")
    return module


class ForkingRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._warm: dict[str, tuple[subprocess.Popen, str]] = {}  # module -> its warm process, code version
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
        run = context.dagster_run
        module = code_module(run)
        with self._lock:
            warm = self._warm_process(module)
            warm.stdin.write(f"{run.run_id}\n")
            warm.stdin.flush()
            answer = warm.stdout.readline().strip()
        if not answer.isdigit():
            raise DagsterLaunchFailedError(f"the warm process for {module} (pid {warm.pid}) ended before it forked "
                                           f"run {run.run_id}: its error is in this process's output")
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: answer})
        self._instance.report_engine_event(f"Forked the run worker (pid {answer}) from the warm process of {module} "
                                           f"(pid {warm.pid}).", run)

    def _warm_process(self, module: str) -> subprocess.Popen:
        from fe_platform.code import code_version

        version = code_version()
        warm, made_from = self._warm.get(module, (None, None))
        if warm is not None and (warm.poll() is not None or made_from != version):
            self._stop(warm)
            warm = None
        if warm is None:
            # (the runs open the launcher's instance; the warm process itself opens none: forks share no storage)
            env = {**os.environ, "DAGSTER_HOME": self._instance.root_directory}
            warm = subprocess.Popen([sys.executable, "-m", __name__, module], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, env=env)
            self._warm[module] = (warm, version)
        return warm

    @staticmethod
    def _stop(warm: subprocess.Popen) -> None:
        warm.stdin.close()  # it ends at the end of its input; the runs it forked go on
        try:
            warm.wait(10)
        except subprocess.TimeoutExpired:
            warm.kill()

    def dispose(self) -> None:
        with self._lock:
            for warm, _ in self._warm.values():
                self._stop(warm)
            self._warm.clear()

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or not _alive(run):
            return False
        self._instance.report_run_canceling(run)
        os.kill(int(run.tags[WORKER_PID_TAG]), signal.SIGINT)  # the run worker's interrupt: Dagster cancels the run
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if _alive(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"its run worker (pid {run.tags.get(WORKER_PID_TAG)}) "
                                                         f"is gone")


def _alive(run: DagsterRun) -> bool:
    pid = run.tags.get(WORKER_PID_TAG, "")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _execute(run_id: str) -> int:
    """In the forked child: the run, as `dagster api execute_run` makes it."""
    import dagster as dg
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), dg.DagsterInstance.get() as instance:
        return _execute_run_command_body(run_id, instance, write_stream_fn=lambda _: None,
                                         set_exit_code_on_failure=False) or 0


def serve(module: str) -> None:
    """The warm process: import `module` and build its definitions once, then fork a run worker per run id read
    from stdin, answering each with the worker's pid."""
    import importlib

    loaded = importlib.import_module(module)
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    defs = getattr(loaded, "defs", None)
    if defs is not None and hasattr(defs, "get_repository_def"):
        defs.get_repository_def()  # resolved once, not in every run
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the finished runs
    for line in sys.stdin:
        run_id = line.strip()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(2, 1)  # the run's own output goes where the launcher's errors go, never into the answers
            code = 1
            try:
                code = _execute(run_id)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
