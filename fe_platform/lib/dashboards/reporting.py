"""The reporting tables the dashboards may read, as the dbt project declares them.

The dbt manifest is the contract: every model of the `reporting` folder has an enforced
contract, so its YAML columns (names and types, in order) are exactly the table's columns.
Nothing here is kept by hand; a table the dbt project does not build is not a reporting table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORTING_LAYER = "reporting"  # the models/ folder of the reporting layer


@dataclass(frozen=True)
class ReportingTable:
    name: str
    schema: str  # the warehouse schema the table is built in
    columns: tuple[str, ...]
    data_types: Mapping[str, str]  # column -> the type the contract declares (e.g. "bigint", "date")
    description: str = ""


def reporting_tables(manifest: Mapping[str, Any]) -> dict[str, ReportingTable]:
    """Every model of the reporting layer in a parsed dbt manifest, by name."""
    out = {}
    for node in manifest.get("nodes", {}).values():
        fqn = node.get("fqn", [])
        if node.get("resource_type") != "model" or len(fqn) < 3 or fqn[1] != REPORTING_LAYER:
            continue
        columns = node.get("columns", {})
        out[node["name"]] = ReportingTable(
            name=node["name"],
            schema=node["schema"],
            columns=tuple(columns),
            data_types={name: (col.get("data_type") or "").lower() for name, col in columns.items()},
            description=node.get("description", ""),
        )
    return dict(sorted(out.items()))


def load_reporting_tables(manifest_path: str | Path) -> dict[str, ReportingTable]:
    return reporting_tables(json.loads(Path(manifest_path).read_text()))
