"""Which offer a subscriber sees: pure code, no I/O.

Eligibility rules are CEL expressions (``common-expression-language``), compiled once when an offer
is saved or loaded. The expression sees ``customer``, ``subscription``, ``user``, ``custom`` (keys
lower-cased), ``context`` and ``now``; a field that is not known is absent, so ``has(x.f)`` tells.
An expression that fails at evaluation (a missing field, a type mismatch) makes the offer
ineligible for that request, never an error for the caller; so does one over the request's
evaluation budget (see ``budget``: a rule is refused at save when it is too costly whatever the
request, and a request's rules run only while their estimated cost fits its allowance).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cel

from offerd.offers import budget
from offerd.offers.budget import Allowance, Cost
from offerd.offers.guards import Guards

VARIABLES = ("customer", "subscription", "user", "custom", "context", "now")
# the variables that are records of known fields: a context needs only the fields rules read
RECORDS = frozenset({"customer", "subscription", "user", "context"})

# what a catalog's rules read: variable -> its fields, or None for the whole value
Reads = dict[str, frozenset[str] | None]

_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


class RuleError(ValueError):
    """An eligibility expression that does not compile, with where the problem is."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{message}{where}")
        self.reason = message
        self.line = line
        self.column = column


def compile_rule(expression: str) -> cel.Program:
    """Compile a rule being saved: it must compile and be within the cost limits."""
    program = load_rule(expression)
    try:
        budget.check_rule(expression)
    except budget.OverBudget as exc:
        raise RuleError(str(exc)) from None
    return program


def load_rule(expression: str) -> cel.Program:
    """Compile a stored rule (saved under older limits, perhaps: the run budget bounds it)."""
    try:
        return cel.compile(expression)
    except Exception as exc:  # the binding raises ValueError; be safe with anything it raises
        text = str(exc)
        match = _POSITION.search(text)
        if match:
            raise RuleError(
                match.group(3).strip(), int(match.group(1)), int(match.group(2))
            ) from None
        raise RuleError(text.splitlines()[0] if text else "invalid expression") from None


@dataclass(frozen=True)
class Candidate:
    """An offer as decisioning needs it."""

    id: str
    version: int
    priority: int
    starts_at: datetime | None
    ends_at: datetime | None
    business_entity_id: str | None
    program: cel.Program | None
    definition: Mapping[str, Any] = field(repr=False)
    brand_id: str | None = None
    guards: Guards | None = None
    status: str = "active"

    always_on: bool = field(init=False, repr=False)
    cost: Cost | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Active, with no window, entity or brand: only its expression and guards can rule it
        # out (computed once, so the serving path skips those checks for most offers).
        object.__setattr__(
            self,
            "always_on",
            self.status == "active"
            and self.starts_at is None
            and self.ends_at is None
            and self.business_entity_id is None
            and self.brand_id is None,
        )
        object.__setattr__(
            self, "cost", Cost.of(self.program.source) if self.program is not None else None
        )


@dataclass(frozen=True)
class Verdict:
    eligible: bool
    reason: str | None = None
    expression_value: Any = None
    expression_error: str | None = None


def reads(programs: Iterable[cel.Program]) -> Reads:
    """Which variables, and which fields of the records, the expressions can read."""
    out: Reads = {}
    for program in programs:
        for variable in program.variables():
            fields = _fields_read(program.source, variable) if variable in RECORDS else None
            if fields is None or (variable in out and out[variable] is None):
                out[variable] = None
            else:
                out[variable] = (out.get(variable) or frozenset()) | fields
    return out


def _fields_read(source: str, variable: str) -> frozenset[str] | None:
    """The fields of ``variable`` the expression selects (``subscription.status``), or None when
    it uses the variable in any other way: alone, indexed, as a method's receiver (``.size()``),
    or in a string or comment. Reading more than an expression needs is harmless; reading less
    cannot happen, since every use of a variable names it."""
    fields: set[str] = set()
    uses = re.finditer(rf"(?<!\w){variable}(?!\w)(?:\s*\.\s*([A-Za-z_]\w*)(?!\w|\s*\())?", source)
    for use in uses:
        if use.group(1) is None:
            return None
        fields.add(use.group(1))
    return frozenset(fields) or None


def lower_keys(value: Any) -> Any:
    """The Python SDK lower-cases every key inside ``custom``; make every client look the same."""
    if isinstance(value, Mapping):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def _present(values: Mapping[str, Any], fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The known (not None) values: of ``fields`` only, when given."""
    if fields is None:
        return {k: v for k, v in values.items() if v is not None}
    return {k: v for k in fields if (v := values.get(k)) is not None}


def build_context(
    *,
    now: datetime,
    customer: Mapping[str, Any] | None,
    subscription: Mapping[str, Any] | None,
    user: Mapping[str, Any],
    custom: Mapping[str, Any] | None,
    context: Mapping[str, Any],
    wanted: Reads | None = None,
) -> cel.Context:
    """One evaluation context per request, shared by every candidate. Building it is the cost
    (each value is converted for CEL), so only what the expressions read goes in: the variables
    and fields in ``wanted`` (see ``reads``), or everything when it is None."""
    if wanted is None:
        wanted = dict.fromkeys(VARIABLES)
    values: dict[str, Any] = {}
    records = {"customer": customer, "subscription": subscription, "user": user, "context": context}
    for name, record in records.items():
        if name in wanted:
            values[name] = _present(record or {}, wanted[name])
    if "custom" in wanted:
        values["custom"] = lower_keys(custom or {})
    if "now" in wanted:
        values["now"] = now
    return cel.Context(values)


def excluded(
    offer: Candidate, *, now: datetime, business_entity_id: str | None, brand_id: str | None
) -> str | None:
    """Why the offer is out before its expression runs (status, window, entity, brand), or None."""
    if offer.status != "active":
        return f"status is {offer.status}"
    if offer.starts_at is not None and now < offer.starts_at:
        return "not started"
    if offer.ends_at is not None and now >= offer.ends_at:
        return "ended"
    if (
        business_entity_id is not None
        and offer.business_entity_id is not None
        and offer.business_entity_id != business_entity_id
    ):
        return "another business entity"
    if brand_id is not None and offer.brand_id is not None and offer.brand_id != brand_id:
        return f"brand {offer.brand_id}, not {brand_id}"
    return None


def fits(
    offer: Candidate,
    ctx: cel.Context,
    *,
    now: datetime,
    business_entity_id: str | None,
    brand_id: str | None = None,
    allowance: Allowance | None = None,
) -> bool:
    """``judge(...).eligible`` without building the explanation (the serving path's check)."""
    if not offer.always_on and excluded(
        offer, now=now, business_entity_id=business_entity_id, brand_id=brand_id
    ):
        return False
    if offer.program is None:
        return True
    if allowance is not None and not allowance.spend(offer.id, offer.cost):
        return False
    try:
        return offer.program.execute(ctx) is True
    except Exception:
        return False


def judge(
    offer: Candidate,
    ctx: cel.Context,
    *,
    now: datetime,
    business_entity_id: str | None,
    brand_id: str | None = None,
    allowance: Allowance | None = None,
) -> Verdict:
    """Everything about an offer and a request except its guards and experiment (see decide)."""
    reason = excluded(offer, now=now, business_entity_id=business_entity_id, brand_id=brand_id)
    if reason is not None:
        return Verdict(False, reason)
    if offer.program is None:
        return Verdict(True)
    if allowance is not None and offer.cost is not None:
        why = allowance.reason(offer.cost)
        if not allowance.spend(offer.id, offer.cost):
            return Verdict(False, why, expression_error=why)
    try:
        result = offer.program.execute(ctx)
    except Exception as exc:
        return Verdict(False, f"expression error: {exc}", expression_error=str(exc))
    if result is True:
        return Verdict(True, expression_value=True)
    return Verdict(False, f"expression is {result!r}", expression_value=result)


def rank(offers: Iterable[Candidate]) -> list[Candidate]:
    """Highest priority first; ties go to the offer with the smaller id, so the order is stable."""
    return sorted(offers, key=lambda o: (-o.priority, o.id))
