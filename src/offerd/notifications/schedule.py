"""When to try a failed delivery again (pure).

Chargebee retries webhooks 2 min, 6 min, 30 min, 1 h, 5 h, 1 day and 2 days after a failure
(spec §8.1); offerd does the same for every channel, with ±10% jitter so that a receiver that
was down is not hit by every retry at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable

RETRY_DELAYS: tuple[int, ...] = (120, 360, 1800, 3600, 5 * 3600, 86400, 2 * 86400)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
JITTER = 0.1


def retry_delay(
    attempt: int, *, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    base = RETRY_DELAYS[min(max(attempt, 1), len(RETRY_DELAYS)) - 1]
    return base * uniform(1 - JITTER, 1 + JITTER)
