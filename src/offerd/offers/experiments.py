"""Experiment arms: deterministic, sticky assignment by weight (pure).

A customer's arm is a function of (site, experiment, customer) only: the SHA-256 of the three,
read as a number in [0, 1), placed on the arms' cumulative weights. The same customer gets the
same arm on every call and every process, with nothing stored; changing the weights moves only
the customers whose point falls in the changed part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

HOLDOUT = "holdout"


@dataclass(frozen=True, slots=True)
class Arm:
    id: str
    weight: int
    offer_id: str | None  # None: the holdout arm (no offer)


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    arms: tuple[Arm, ...]

    @property
    def offer_ids(self) -> frozenset[str]:
        return frozenset(a.offer_id for a in self.arms if a.offer_id is not None)


def point(site_id: str, experiment_id: str, customer_id: str) -> float:
    digest = hashlib.sha256(f"{site_id}\x1f{experiment_id}\x1f{customer_id}".encode()).digest()
    # 53 bits: exactly representable as a float, so the point is always below 1
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def assign(site_id: str, experiment: Experiment, customer_id: str) -> Arm:
    return pick(experiment.arms, point(site_id, experiment.id, customer_id))


def pick(arms: Sequence[Arm], at: float) -> Arm:
    total = sum(a.weight for a in arms)
    if total <= 0:
        raise ValueError("an experiment needs a positive total weight")
    target = at * total
    running = 0
    for arm in arms:
        running += arm.weight
        if target < running:
            return arm
    return arms[-1]
