"""A code location for the run launcher's test: a run that ends at once, and one that waits to be stopped."""

import os
import time
from pathlib import Path

import dagster as dg

print("loading the runs location")  # as a module may while it loads: the launcher's answers must stay apart

@dg.asset
def quick() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"worker_pid": os.getpid(), "warm_pid": os.getppid()})


@dg.asset
def slow() -> None:
    started = Path(os.environ["FE_TEST_STARTED"])
    started.write_text(str(os.getpid()))
    time.sleep(120)


# in-process, as the platform's jobs: the step runs in the run worker itself
defs = dg.Definitions(assets=[quick, slow], executor=dg.in_process_executor,
                      jobs=[dg.define_asset_job("quick_job", [quick]), dg.define_asset_job("slow_job", [slow])])
