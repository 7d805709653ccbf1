"""Lift against the holdout that stays honest however often it is looked at (pure).

The method: an asymptotic confidence sequence for a difference of means, from Waudby-Smith,
Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
sequences" (Annals of Statistics, 2024), Theorem 2.2 with the Robbins normal mixture, applied to
the A/B estimator of their section on randomized experiments. With ``t`` subscribers assigned so
far, a share ``pi`` of them to the arm, and ``Y`` the outcome (accepted, saved: 0 or 1), each
subscriber contributes ``psi = Y * (Z / pi - (1 - Z) / (1 - pi))``, whose mean is the lift
``p_arm - p_holdout``. The interval

    lift +- sqrt( 2 (t s2 rho2 + 1) / (t^2 rho2) * log( sqrt(t s2 rho2 + 1) / alpha ) )

with ``s2`` the estimated variance of ``psi`` (``p_arm / pi + p_holdout / (1 - pi) - lift^2``)
covers the true lift at every ``t`` at once with probability at least 1 - alpha (as ``t`` grows),
so looking after every visitor, stopping when it excludes 0, keeps the false-positive rate at
alpha. A fixed-sample z-test looked at repeatedly does not (the tests show it passing 5 % by far).

``rho`` tunes where the interval is tightest: it is chosen for ``t * s2`` near ``tuning_n``
(10,000 by default: a few thousand subscribers per arm), by the paper's formula
``rho2 = (-2 log alpha + log(-2 log alpha + 1)) / tuning_n``. Narrower there, a little wider far
from it; valid everywhere.

Counts only: the rollups know how many were assigned and succeeded per arm, not the order. The
sequence is valid at whatever ``t`` is reached when a report is asked for, which is all a
continuously monitored dashboard needs. Below ``MIN_PER_ARM`` subscribers in either arm (the
asymptotics have not set in) the verdict is ``inconclusive`` and the interval the whole range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05
TUNING_N = 10_000
MIN_PER_ARM = 30

Verdict = Literal["better", "worse", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Lift:
    arm_rate: float | None
    holdout_rate: float | None
    lift: float | None  # arm_rate - holdout_rate
    interval_low: float
    interval_high: float
    verdict: Verdict


def rho2(alpha: float = ALPHA, tuning_n: float = TUNING_N) -> float:
    log_term = -2 * math.log(alpha)
    return (log_term + math.log(log_term + 1)) / tuning_n


def half_width(
    t: int, variance: float, *, alpha: float = ALPHA, tuning_n: float = TUNING_N
) -> float:
    """The confidence sequence's half width after ``t`` observations of variance ``variance``."""
    r2 = rho2(alpha, tuning_n)
    v = t * variance * r2 + 1
    return math.sqrt(2 * v / (t * t * r2) * math.log(math.sqrt(v) / alpha))


def lift(
    arm_n: int,
    arm_successes: int,
    holdout_n: int,
    holdout_successes: int,
    *,
    alpha: float = ALPHA,
    tuning_n: float = TUNING_N,
) -> Lift:
    """The arm's rate minus the holdout's, with its always-valid interval and verdict."""
    arm_rate = arm_successes / arm_n if arm_n else None
    holdout_rate = holdout_successes / holdout_n if holdout_n else None
    if arm_rate is None or holdout_rate is None:
        return Lift(arm_rate, holdout_rate, None, -1.0, 1.0, "inconclusive")
    difference = arm_rate - holdout_rate
    if min(arm_n, holdout_n) < MIN_PER_ARM:
        return Lift(arm_rate, holdout_rate, difference, -1.0, 1.0, "inconclusive")
    t = arm_n + holdout_n
    pi = arm_n / t
    variance = max(arm_rate / pi + holdout_rate / (1 - pi) - difference * difference, 1e-12)
    width = half_width(t, variance, alpha=alpha, tuning_n=tuning_n)
    low, high = max(-1.0, difference - width), min(1.0, difference + width)
    verdict: Verdict = "better" if low > 0 else "worse" if high < 0 else "inconclusive"
    return Lift(arm_rate, holdout_rate, difference, low, high, verdict)
