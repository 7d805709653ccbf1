"""How many deliveries to one destination host a process runs at once.

A host that answers slowly (or trickles its answer) holds each of its deliveries for up to the
attempt deadline; without a cap its backlog would take every delivery slot of the worker and
every other merchant's deliveries would wait. A delivery that finds its host's slots taken does
not wait in a slot either: its job is deferred (not counted as an attempt) and claimed again a
moment later, leaving the slot to a delivery for another host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


class HostSlots:
    """Per-host counters on one event loop (no lock needed: nothing awaits in between)."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self.busy: dict[str, int] = {}

    def take(self, host: str) -> bool:
        n = self.busy.get(host, 0)
        if n >= self.per_host:
            return False
        self.busy[host] = n + 1
        return True

    def give(self, host: str) -> None:
        n = self.busy.get(host, 0) - 1
        if n > 0:
            self.busy[host] = n
        else:
            self.busy.pop(host, None)


def host_of(delivery: Mapping[str, Any]) -> str | None:
    """The host an HTTP delivery goes to; None for email (one relay, its own limits)."""
    config = delivery.get("channel_config") or {}
    url = {
        "webhook": delivery.get("destination"),
        "slack": config.get("webhook_url"),
        "segment": config.get("endpoint"),
    }.get(delivery["channel"])
    if not url:
        return None
    try:
        return urlsplit(str(url)).hostname
    except ValueError:
        return None
