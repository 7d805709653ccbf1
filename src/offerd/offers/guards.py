"""Frequency guards per offer (pure): judged against the customer's recent events for it.

- ``dismiss_cooldown_days``: not again within N days of a dismissal;
- ``max_views``: at most ``count`` views per ``period_days``;
- ``accept_cooldown_days``: not again within N days of an acceptance;
- ``max_acceptances``: at most ``count`` acceptances per ``period_days``.

The events come from one indexed query per decision (the customer's viewed, dismissed and
accepted events within the longest window any active offer asks for).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    period_days: int


@dataclass(frozen=True, slots=True)
class Guards:
    dismiss_cooldown_days: int | None = None
    max_views: Limit | None = None
    accept_cooldown_days: int | None = None
    max_acceptances: Limit | None = None

    @classmethod
    def from_definition(cls, raw: Mapping[str, Any] | None) -> Guards | None:
        if not raw:
            return None

        def limit(key: str) -> Limit | None:
            value = raw.get(key)
            return Limit(value["count"], value["period_days"]) if value else None

        return cls(
            dismiss_cooldown_days=raw.get("dismiss_cooldown_days"),
            max_views=limit("max_views"),
            accept_cooldown_days=raw.get("accept_cooldown_days"),
            max_acceptances=limit("max_acceptances"),
        )

    @property
    def lookback_days(self) -> int:
        days = [
            self.dismiss_cooldown_days or 0,
            self.max_views.period_days if self.max_views else 0,
            self.accept_cooldown_days or 0,
            self.max_acceptances.period_days if self.max_acceptances else 0,
        ]
        return max(days)


@dataclass(frozen=True, slots=True)
class Seen:
    """One of the customer's past events for an offer."""

    type: str  # viewed | dismissed | accepted
    at: datetime


def _since(events: Iterable[Seen], kind: str, since: datetime) -> list[Seen]:
    return [e for e in events if e.type == kind and e.at > since]


def blocked(guards: Guards | None, events: Iterable[Seen], now: datetime) -> str | None:
    """The guard that keeps the offer from this customer now, or None."""
    if guards is None:
        return None
    history = list(events)
    if guards.dismiss_cooldown_days:
        recent = _since(history, "dismissed", now - timedelta(days=guards.dismiss_cooldown_days))
        if recent:
            return (
                f"dismissed {_ago(now, recent)} ago; cool-down {guards.dismiss_cooldown_days} days"
            )
    if guards.accept_cooldown_days:
        recent = _since(history, "accepted", now - timedelta(days=guards.accept_cooldown_days))
        if recent:
            return f"accepted {_ago(now, recent)} ago; no re-offer for {guards.accept_cooldown_days} days"
    for name, kind, limit in (
        ("max_views", "viewed", guards.max_views),
        ("max_acceptances", "accepted", guards.max_acceptances),
    ):
        if limit is not None:
            count = len(_since(history, kind, now - timedelta(days=limit.period_days)))
            if count >= limit.count:
                return f"{name}: {kind} {count} times in {limit.period_days} days (limit {limit.count})"
    return None


def _ago(now: datetime, events: list[Seen]) -> str:
    latest = max(e.at for e in events)
    seconds = int((now - latest).total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} hours"
    return f"{max(seconds // 60, 0)} minutes"
