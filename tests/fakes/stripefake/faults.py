"""What the test makes go wrong, consumed by the next matching requests (thread-safe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    kind: str  # "status": answer with ``status``; "drop": apply, store, then cut the connection
    status: int = 500
    retry_after: int | None = None
    should_retry: bool | None = None
    apply: bool = False  # "status" only: apply the change first (then answer ``status``)
    store: bool = True  # stored against the idempotency key (and replayed), as Stripe does a 500
    methods: tuple[str, ...] = ("POST", "DELETE")

    @property
    def during(self) -> bool:
        """Happens once the endpoint began executing (after the idempotency lookup)."""
        return self.kind == "drop" or self.store


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.latency = 0.0

    def add(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._queue.extend([fault] * times)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.latency = 0.0

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def take(self, method: str, *, during: bool) -> Fault | None:
        """The first queued fault for this method, if it belongs to this phase of the request."""
        with self._lock:
            for i, fault in enumerate(self._queue):
                if method in fault.methods:
                    if fault.during != during:
                        return None
                    return self._queue.pop(i)
            return None
