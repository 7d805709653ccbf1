"""Each process keeps every site's active offers compiled and ranked, and its running experiments,
keyed by the site's ``catalog_version`` (bumped by every catalog write), so decisioning does no
per-offer work but evaluating rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from offerd.db import Conn
from offerd.offers import store
from offerd.offers.experiments import Arm, Experiment
from offerd.offers.guards import Guards
from offerd.offers.targeting import Candidate, Reads, load_rule, rank, reads
from offerd.sites.models import Site


@dataclass(frozen=True)
class Compiled:
    ranked: list[Candidate]
    experiments_by_offer: Mapping[str, Experiment]
    guard_lookback_days: int = 0
    offers_with_guards: frozenset[str] = field(default_factory=frozenset)
    by_id: Mapping[str, Candidate] = field(default_factory=dict)
    # the variables (and their fields) the expressions read: only those go in a request's context
    reads: Reads = field(default_factory=dict)
    _units: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def units(self, extent: int) -> int:
        """What running every rule once costs for inputs of this extent (see budget.Cost): when
        it fits a request's budget even twice over (an experiment's arm offer may be checked
        twice), the request needs no accounting, and the serving path does none."""
        hit = self._units.get(extent)
        if hit is None:
            hit = sum(c.cost.units(extent) for c in self.ranked if c.cost is not None)
            if len(self._units) < 64:
                self._units[extent] = hit
        return hit


class Catalog:
    def __init__(self) -> None:
        self._by_site: dict[str, tuple[int, Compiled]] = {}

    async def compiled(self, conn: Conn, site: Site) -> Compiled:
        hit = self._by_site.get(site.id)
        if hit is not None and hit[0] == site.catalog_version:
            return hit[1]
        compiled = await load(conn, site.id, active_only=True)
        self._by_site[site.id] = (site.catalog_version, compiled)
        return compiled

    def forget(self, site_id: str | None = None) -> None:
        if site_id is None:
            self._by_site.clear()
        else:
            self._by_site.pop(site_id, None)


async def load(conn: Conn, site_id: str, *, active_only: bool) -> Compiled:
    rows = await (
        store.active_offers(conn, site_id) if active_only else store.all_offers(conn, site_id)
    )
    ranked = rank(candidate(row) for row in rows)
    experiments = [experiment(row) for row in await store.running_experiments(conn, site_id)]
    by_offer = {offer_id: e for e in experiments for offer_id in e.offer_ids}
    guarded = [c for c in ranked if c.guards is not None]
    return Compiled(
        ranked=ranked,
        experiments_by_offer=by_offer,
        guard_lookback_days=max((c.guards.lookback_days for c in guarded if c.guards), default=0),
        offers_with_guards=frozenset(c.id for c in guarded),
        by_id={c.id: c for c in ranked},
        reads=reads(c.program for c in ranked if c.program),
    )


def candidate(row: Mapping[str, Any]) -> Candidate:
    definition = row["definition"]
    expression = definition.get("eligibility")
    starts, ends = row["starts_at"], row["ends_at"]
    return Candidate(
        id=str(row["id"]),
        version=int(row["version"]),
        priority=int(row["priority"]),
        starts_at=starts if isinstance(starts, datetime) else None,
        ends_at=ends if isinstance(ends, datetime) else None,
        business_entity_id=row["business_entity_id"] or None,
        program=load_rule(expression) if expression else None,
        definition=definition,
        brand_id=row.get("brand_id"),
        guards=Guards.from_definition(definition.get("guards")),
        status=str(row.get("status", "active")),
    )


def experiment(row: Mapping[str, Any]) -> Experiment:
    return Experiment(
        id=row["id"],
        arms=tuple(Arm(a["id"], int(a["weight"]), a.get("offer_id")) for a in row["arms"]),
    )
