"""The local outbox: one JSON file per message under `<outbox>/{email,chat,sns}/`, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from fe_platform.lib.alerts.model import Alert

CHANNELS = ("email", "chat", "sns")


def write_outbox(outbox: Path, channel: str, alert: Alert, to: list[str] | None = None) -> Path:
    """Write the alert as `<outbox>/<channel>/<time>_<kind>_<team>_<hash>.json`; a reader never sees half a file."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown outbox channel {channel!r}")
    body = alert.as_dict()
    if to is not None:
        body["to"] = list(to)
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    folder = Path(outbox, channel)
    folder.mkdir(parents=True, exist_ok=True)
    team = re.sub(r"[^A-Za-z0-9-]", "_", alert.team)[:64]
    name = (f"{alert.created_at:%Y%m%dT%H%M%S%fZ}_{alert.kind}_{team}_"
            f"{hashlib.sha256(data).hexdigest()[:12]}.json")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return folder / name


def read_outbox(outbox: Path) -> list[tuple[str, dict]]:
    """Every message in the outbox as (channel, alert fields), oldest first."""
    out = []
    for channel in CHANNELS:
        folder = Path(outbox, channel)
        if folder.is_dir():
            out += [(channel, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return sorted(out, key=lambda item: item[1]["created_at"])


def outbox_summary(outbox: Path) -> list[str]:
    """Lines for a run's summary: how many alerts each team has in the outbox, by kind and channel, and where."""
    messages = read_outbox(outbox)
    if not messages:
        return [f"  alerts: none in the outbox ({outbox})"]
    kinds: dict[str, Counter] = {}
    channels: dict[str, Counter] = {}
    for channel, alert in messages:
        kinds.setdefault(alert["team"], Counter())[alert["kind"]] += 1
        channels.setdefault(alert["team"], Counter())[channel] += 1
    lines = [f"  alerts: {len(messages)} messages to {len(kinds)} teams in the outbox {outbox}"]
    for team in sorted(kinds):
        by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds[team].items()))
        by_channel = ", ".join(f"{channel} {n}" for channel, n in sorted(channels[team].items()))
        lines.append(f"    {team:22} {sum(kinds[team].values()):>5}: {by_kind} ({by_channel})")
    return lines
