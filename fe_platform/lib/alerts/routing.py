"""Routing: an alert goes to its asset's owner team(s), through that team's channels (or the platform team's)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fe_platform.lib.alerts.model import Alert, Finding

OWNERS = "owners"  # in a team's email list: the asset's owner addresses
OUTBOX = "outbox"  # as a webhook or SNS topic: a file under the outbox instead


@dataclass(frozen=True)
class TeamChannels:
    email: tuple[str, ...] = ()
    webhook: str | None = field(default=None, repr=False)  # a secret URL, or OUTBOX
    sns_topic: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.email or self.webhook or self.sns_topic)


DEFAULT_CHANNELS = TeamChannels(email=(OWNERS,))


def team_setting_name(team: str) -> str:
    """A team's name as settings spell it: crm-operations -> CRM_OPERATIONS."""
    return re.sub(r"[^A-Z0-9]+", "_", team.upper()).strip("_")


@dataclass(frozen=True)
class Routing:
    platform_team: str
    teams: Mapping[str, TeamChannels] = field(default_factory=dict)  # by team_setting_name

    def channels(self, team: str) -> TeamChannels:
        """The team's channels; a team without any is told through the platform team's."""
        for name in (team, self.platform_team):
            found = self.teams.get(team_setting_name(name))
            if found is not None and not found.empty:
                return found
        return DEFAULT_CHANNELS


def owner_teams(owners: tuple[str, ...] | list[str]) -> list[str]:
    return [o.removeprefix("team:") for o in owners if o.startswith("team:")]


def owner_emails(owners: tuple[str, ...] | list[str]) -> list[str]:
    return [o for o in owners if "@" in o and not o.startswith("team:")]


def route(finding: Finding, platform_team: str) -> list[Alert]:
    """One alert per owner team of the finding (the platform team when its asset names none)."""
    teams = owner_teams(finding.owners) or [platform_team]
    to = tuple(owner_emails(finding.owners))
    return [Alert(kind=finding.kind, team=team, to=to, asset=finding.asset, partition=finding.partition,
                  check=finding.check, subject=finding.subject, text=finding.text, link=finding.link,
                  created_at=finding.created_at) for team in dict.fromkeys(teams)]


def recipients(channels: TeamChannels, alert: Alert) -> list[str]:
    """The email addresses of a team's email channel, `owners` replaced by the alert's owner addresses."""
    out: list[str] = []
    for item in channels.email:
        out += list(alert.to) if item == OWNERS else [item]
    return list(dict.fromkeys(out))
