"""What has been told: the failures that are open (told, not yet recovered) and the evaluation cursors.

A failure is told once: `fail` answers True only when its key is not open already, and only `recover`
opens it again. The ledger keeps nothing itself; it reads and writes a key-value store that lives with
the platform (the Dagster instance's), so it survives processes and is shared by the daemon's sensor
and `fe-platform run`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

PREFIX = "fe_platform/alerts/"
CHUNK = 500  # keys per read, below every database's limit on bound values


class KeyValueStore(Protocol):
    def get(self, keys: set[str]) -> dict[str, str]: ...

    def put(self, key: str, value: str) -> None: ...


class Ledger:
    def __init__(self, store: KeyValueStore):
        self.store = store
        self._values: dict[str, str] = {}

    @staticmethod
    def _told_key(dedupe_key: str) -> str:
        return f"{PREFIX}told/{hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]}"

    def load(self, dedupe_keys: Iterable[str]) -> None:
        """Read the state of many keys at once (one query per CHUNK), before asking about them."""
        wanted = sorted({self._told_key(k) for k in dedupe_keys} - set(self._values))
        for start in range(0, len(wanted), CHUNK):
            chunk = set(wanted[start:start + CHUNK])
            found = self.store.get(chunk)
            self._values.update({k: found.get(k, "") for k in chunk})

    def _get(self, key: str) -> str:
        if key not in self._values:
            self._values[key] = self.store.get({key}).get(key, "")
        return self._values[key]

    def _put(self, key: str, value: str) -> None:
        self.store.put(key, value)
        self._values[key] = value

    def is_open(self, dedupe_key: str) -> bool:
        return bool(self._get(self._told_key(dedupe_key)))

    def fail(self, dedupe_key: str, at: datetime) -> bool:
        """Record a failure; True when it is new (to be told), False when it is already open."""
        if self.is_open(dedupe_key):
            return False
        self._put(self._told_key(dedupe_key), json.dumps({"key": dedupe_key, "since": at.isoformat()}))
        return True

    def recover(self, dedupe_key: str) -> None:
        if self.is_open(dedupe_key):
            self._put(self._told_key(dedupe_key), "")

    def cursor(self, name: str) -> str | None:
        return self._get(f"{PREFIX}cursor/{name}") or None

    def set_cursor(self, name: str, value: str) -> None:
        self._put(f"{PREFIX}cursor/{name}", value)


class MemoryStore:
    """A store in a dict: for the ledger's own tests, never for the platform."""

    def __init__(self):
        self.values: dict[str, str] = {}

    def get(self, keys: set[str]) -> dict[str, str]:
        return {k: self.values[k] for k in keys if k in self.values}

    def put(self, key: str, value: str) -> None:
        self.values[key] = value
