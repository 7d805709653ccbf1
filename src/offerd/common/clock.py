"""Time comes from a Clock handed in, so tests can move it without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta | float) -> None:
        self.at += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def unix(at: datetime | None) -> int | None:
    """Timestamps on the wire are Unix seconds."""
    return None if at is None else int(at.timestamp())
