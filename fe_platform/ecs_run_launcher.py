"""Dagster's ECS run launcher, with the task role chosen per run (used by dagster.aws.yaml).

Every run is one ECS task of the run task definition, whose role (RunTaskRole) reads the silver zone only.
Ingestion runs need bronze, and dashboard runs publish: they get the ingestion role or the dashboard
publishing role through the task's `taskRoleArn` override, so no run holds more than its work needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.dagster_run import DagsterRun
from dagster_aws.ecs import EcsRunLauncher

FEED_TAG = "fe_platform/feed"  # carried by every ingestion job's runs
INGESTION_ASSET_PREFIXES = ("landing_", "raw_", "validated_")
DASHBOARDS_ASSET_PREFIX = "dashboards"


def run_kind(run: DagsterRun) -> str:
    """`ingestion`, `dashboards` or `other`, from the run's tags and the assets it materializes."""
    keys = [key.path for key in (run.asset_selection or ())]
    if FEED_TAG in run.tags or any(path[0].startswith(INGESTION_ASSET_PREFIXES) for path in keys):
        return "ingestion"
    if any(path[0] == DASHBOARDS_ASSET_PREFIX for path in keys):
        return "dashboards"
    return "other"


class PlatformEcsRunLauncher(EcsRunLauncher):
    def __init__(self, ingestion_task_role_arn: str | None = None, dashboard_task_role_arn: str | None = None,
                 **kwargs: Any):
        self.role_for_kind = {"ingestion": ingestion_task_role_arn, "dashboards": dashboard_task_role_arn}
        super().__init__(**kwargs)

    @classmethod
    def config_type(cls):
        return {
            **super().config_type(),
            "ingestion_task_role_arn": Field(StringSource, is_required=False,
                                             description="Task role of ingestion runs."),
            "dashboard_task_role_arn": Field(StringSource, is_required=False,
                                             description="Task role of runs that refresh dashboards."),
        }

    def _get_task_overrides(self, container_context, run: DagsterRun) -> Mapping[str, Any]:
        overrides = dict(super()._get_task_overrides(container_context, run))
        role = self.role_for_kind.get(run_kind(run))
        if role:
            overrides["taskRoleArn"] = role
        return overrides
