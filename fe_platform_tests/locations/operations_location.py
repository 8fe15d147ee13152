"""A code location for the daemon test: the ingestion and operations definitions, and a landing sensor that
fails every tick (as one does when its bucket's credentials expire)."""

import dagster as dg

from fe_platform.defs import ingestion, operations
from fe_platform.defs.resources import platform_resources
from fe_platform.settings import load_settings

settings = load_settings()


@dg.sensor(name="broken_landing_sensor", job_name="ingest_sfdc_account_job", minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING)
def broken_landing_sensor(context: dg.SensorEvaluationContext):
    raise PermissionError("listing landing/sfdc_account/ was refused")


defs = dg.Definitions.merge(ingestion.build_defs(settings), operations.build_defs(settings),
                            dg.Definitions(sensors=[broken_landing_sensor], resources=platform_resources(settings)))
