"""The decision (pure): which offer, if any, a subscriber gets, and why.

Candidates are walked in rank order (highest priority first). The first one that is eligible
(status, window, business entity, brand, eligibility expression) and not held back by a
frequency guard wins, unless it belongs to a running experiment: then the experiment holds the
placement and the customer's arm fills it, wherever its offer ranks: the arm's own offer if it
is eligible, nothing for the holdout arm (and that is the decision). Only when the arm's offer
is not eligible for this customer does the walk go on, past the experiment's other offers.

With ``explain`` the walk judges every candidate and says why each is in or out.

Each rule that runs takes its estimated cost from the request's ``allowance`` (see ``budget``);
a rule it does not fit is not run, and its offer is not eligible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cel

from offerd.offers import experiments, guards, targeting
from offerd.offers.budget import Allowance
from offerd.offers.experiments import Arm, Experiment
from offerd.offers.targeting import Candidate


@dataclass(frozen=True, slots=True)
class Judgement:
    offer_id: str
    version: int
    priority: int
    eligible: bool
    reason: str | None
    expression: dict[str, Any] | None = None
    guard: str | None = None
    experiment: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "version": self.version,
            "priority": self.priority,
            "eligible": self.eligible,
            "reason": self.reason,
            "expression": self.expression,
            "guard": self.guard,
            "experiment": self.experiment,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    offer: Candidate | None
    experiment: Experiment | None = None
    arm: Arm | None = None
    judgements: list[Judgement] = field(default_factory=list)

    @property
    def holdout(self) -> bool:
        return self.arm is not None and self.arm.offer_id is None


@dataclass(frozen=True, slots=True)
class _Assessment:
    eligible: bool
    reason: str | None
    expression: dict[str, Any] | None
    guard: str | None


def decide(
    ranked: Sequence[Candidate],
    ctx: cel.Context,
    *,
    now: datetime,
    site_id: str,
    customer_id: str,
    business_entity_id: str | None,
    brand_id: str | None,
    history: Mapping[str, Sequence[guards.Seen]],
    experiments_by_offer: Mapping[str, Experiment],
    explain: bool = False,
    by_id: Mapping[str, Candidate] | None = None,
    allowance: Allowance | None = None,
) -> Outcome:
    """``by_id``: the candidates by id (the catalog keeps one; built here when not given)."""
    if by_id is None:
        by_id = {c.id: c for c in ranked} if experiments_by_offer else {}

    def check(offer: Candidate) -> bool:
        """Eligible and not held back by a guard: the serving path's test, allocation-free."""
        if not offer.always_on and targeting.excluded(
            offer, now=now, business_entity_id=business_entity_id, brand_id=brand_id
        ):
            return False
        program = offer.program
        if program is not None:
            if allowance is not None and not allowance.spend(offer.id, offer.cost):
                return False
            try:
                if program.execute(ctx) is not True:
                    return False
            except Exception:
                return False
        return (
            offer.guards is None
            or guards.blocked(offer.guards, history.get(offer.id, ()), now) is None
        )

    if not explain:
        return _serve(ranked, check, experiments_by_offer, by_id, site_id, customer_id)

    def assess(offer: Candidate) -> _Assessment:
        """The same test, explained (for explain only)."""
        verdict = targeting.judge(
            offer,
            ctx,
            now=now,
            business_entity_id=business_entity_id,
            brand_id=brand_id,
            allowance=allowance,
        )
        expression = None
        evaluated = verdict.expression_value is not None or verdict.expression_error is not None
        if offer.program is not None and evaluated:
            expression = {
                "source": offer.program.source,
                "value": verdict.expression_value,
                "error": verdict.expression_error,
            }
        eligible, reason, guard = verdict.eligible, verdict.reason, None
        if eligible:
            guard = guards.blocked(offer.guards, history.get(offer.id, ()), now)
            if guard is not None:
                eligible, reason = False, f"guard: {guard}"
        return _Assessment(eligible, reason, expression, guard)

    decided: Outcome | None = None
    judgements: list[Judgement] = []
    arms: dict[str, Arm] = {}
    placed: set[str] = set()  # experiments whose placement this walk has settled
    for offer in ranked:
        a = assess(offer)
        eligible, reason = a.eligible, a.reason
        experiment = experiments_by_offer.get(offer.id) if experiments_by_offer else None
        experiment_view = None
        if experiment is not None:
            arm = arms.get(experiment.id) or experiments.assign(site_id, experiment, customer_id)
            arms[experiment.id] = arm
            experiment_view = {"id": experiment.id, "arm": arm.id, "arm_offer_id": arm.offer_id}
            if eligible and decided is None and experiment.id not in placed:
                # The experiment's first eligible offer claims the placement; the customer's
                # arm fills it: its own offer if eligible, or nothing for the holdout.
                placed.add(experiment.id)
                if arm.offer_id is None:
                    decided = Outcome(None, experiment, arm)
                elif arm.offer_id == offer.id:
                    decided = Outcome(offer, experiment, arm)
                elif (target := by_id.get(arm.offer_id)) is not None and check(target):
                    decided = Outcome(target, experiment, arm)
            if eligible and arm.offer_id != offer.id:
                eligible = False
                reason = (
                    f"experiment {experiment.id}: the customer is in the holdout arm"
                    if arm.offer_id is None
                    else f"experiment {experiment.id}: the customer's arm is {arm.id} ({arm.offer_id})"
                )
        elif eligible and decided is None:
            decided = Outcome(offer)
        judgements.append(
            Judgement(
                offer_id=offer.id,
                version=offer.version,
                priority=offer.priority,
                eligible=eligible,
                reason=reason,
                expression=a.expression,
                guard=a.guard,
                experiment=experiment_view,
            )
        )
    result = decided or Outcome(None)
    return Outcome(result.offer, result.experiment, result.arm, judgements)


def _serve(
    ranked: Sequence[Candidate],
    check: Callable[[Candidate], bool],
    experiments_by_offer: Mapping[str, Experiment],
    by_id: Mapping[str, Candidate],
    site_id: str,
    customer_id: str,
) -> Outcome:
    """The serving path's walk: the same decision as the explained one, without judging the
    offers after the winner, nor hashing an experiment's arm before one of its offers is
    eligible. The walk is the cost of a large catalog, so it does nothing per offer but the
    check."""
    placed: set[str] = set()  # experiments whose arm's offer turned out not eligible
    for offer in ranked:
        if not check(offer):
            continue
        experiment = experiments_by_offer.get(offer.id) if experiments_by_offer else None
        if experiment is None:
            return Outcome(offer)
        if experiment.id in placed:
            continue
        # The experiment's first eligible offer claims the placement; the customer's arm
        # fills it: its own offer if eligible, or nothing for the holdout.
        placed.add(experiment.id)
        arm = experiments.assign(site_id, experiment, customer_id)
        if arm.offer_id is None:
            return Outcome(None, experiment, arm)
        if arm.offer_id == offer.id:
            return Outcome(offer, experiment, arm)
        target = by_id.get(arm.offer_id)
        if target is not None and check(target):
            return Outcome(target, experiment, arm)
    return Outcome(None)
