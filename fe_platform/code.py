"""The platform's code as it stands on disk: what a warm run process and a remembered evaluation were made from."""

from __future__ import annotations

import hashlib
import importlib.metadata

from fe_platform.settings import PROJECT_ROOT


def code_version() -> str:
    """A digest of the platform's Python sources, the prepared dbt manifest and Dagster's version."""
    digest = hashlib.sha256(importlib.metadata.version("dagster").encode())
    manifest = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
    for path in [*sorted((PROJECT_ROOT / "fe_platform").rglob("*.py")), manifest]:
        try:
            digest.update(path.read_bytes())
        except OSError:  # not there (yet), or replaced by an editor meanwhile
            digest.update(b"-")
    return digest.hexdigest()
