"""The notebooks run, top to bottom, against a demo-sized warehouse, and are kept without outputs.

The warehouse is a DuckDB file of fabricated reporting tables (17 brands over 26 weeks, 8 territories,
patient starts): the shapes the dbt project builds, without running the whole demo. The notebook finds it
through the platform's settings, as a person's would.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fe_platform.settings import load_settings
from fe_platform_tests.test_dashboards_fixtures import BRANDS, write_reporting_tables

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BRAND_REVIEW = NOTEBOOKS / "brand_review.ipynb"


def test_notebooks_are_saved_without_outputs():
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert BRAND_REVIEW in notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"


@pytest.fixture
def warehouse_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in ("FE_WAREHOUSE", "FE_DUCKDB_PATH", "DAGSTER_HOME", "FE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FE_HOME", str(home))  # the kernel inherits this process's environment
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline
    write_reporting_tables(load_settings({"FE_HOME": str(home)}))
    return home


def outputs(nb, kind: str) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == kind]


def test_brand_review_runs_against_the_warehouse_of_the_settings(warehouse_home, tmp_path):
    nb = nbformat.read(BRAND_REVIEW, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert outputs(nb, "error") == []
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    assert f"warehouse: duckdb at {warehouse_home / 'warehouse.duckdb'}" in text
    assert "17 brands, 13 weeks reviewed: 21 Aug 2026 to 13 Nov 2026" in text
    shown = [o for o in outputs(nb, "display_data") + outputs(nb, "execute_result")]
    pictures = [o for o in shown if "image/png" in o.data]
    assert len(pictures) >= 2  # the trend and share chart, and patient starts
    tables = "".join(o.data.get("text/html", "") for o in shown)
    for _code, name, _market, is_own, _base in BRANDS:
        if is_own:
            assert name in tables
    assert "%" in tables and "Boston North" in tables and "reversal rate" in tables
    # the saved notebook is untouched: the run happened on a copy in memory
    assert all(c.outputs == [] for c in nbformat.read(BRAND_REVIEW, as_version=4).cells if c.cell_type == "code")
