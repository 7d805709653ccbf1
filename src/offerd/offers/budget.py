"""What an eligibility rule may cost, and what a request may make the rules cost.

CEL (``common-expression-language``) has no cost limit, no interrupt and no AST in its Python
binding, and ``execute`` holds the GIL: a running rule can be neither stopped nor moved off the
event loop by a thread. So the cost is bounded before anything runs, at three points:

- input: ``custom`` has size limits (``check_custom``); the other variables are small records
  whose fields have length limits already;
- save: a rule is scanned (``Cost.of``, a tokenizer that knows CEL's string literals and comments),
  and refused when its comprehension macros nest more than ``MAX_MACRO_NESTING`` deep or when it
  is over the budget for the smallest inputs (``check_rule``);
- run: each request has ``REQUEST_BUDGET`` units; before a rule runs, its estimated cost for this
  request's inputs is taken from what is left (``Allowance``), and a rule it does not fit is not
  run and is not eligible.

The estimate is a polynomial in ``extent``, the longest list or map the rule can iterate (in the
request's ``custom``, ``roles``, a record, or a list literal of the rule): a token at comprehension
depth ``d`` costs ``extent**d``; an operation that may be linear in its operands (``in``,
comparisons, ``+``, any function or method call) one power more; ``map``/``filter`` three more at
their own depth, as the library copies its accumulator on each step (quadratic) and may copy lists
as elements. It overestimates (a comparison of two strings counts as linear in ``extent``). The
shape that costs the most time per unit, measured on the dev VM, is ``in`` over long lists (about
0.12 µs a unit: 2M units of ``custom.a.exists(t, t in custom.b)`` took 0.23 s; nested
``exists``, ``map``, ``filter`` and ``matches`` at the budget took 3-65 ms), so a request's rules
take at most about a quarter of a second of the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --- input limits: the documented sizes of ``custom`` --------------------------------------------
CUSTOM_MAX_KEYS = 100  # keys in one object
CUSTOM_MAX_ITEMS = 1000  # items in one list
CUSTOM_MAX_STRING = 1000  # characters in one string (keys included)
CUSTOM_MAX_DEPTH = 5  # objects and lists nested in custom
CUSTOM_MAX_VALUES = 5000  # values in all, at every depth

# --- rule limits ---------------------------------------------------------------------------------
MAX_MACRO_NESTING = 2  # comprehension macros inside comprehension macros
REQUEST_BUDGET = 2_000_000  # estimated units a request's rules may use in all
# the longest collection a rule can meet without custom: a record's fields, the user's roles
RECORD_EXTENT = 16

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ACCUMULATING = frozenset({"map", "filter"})
_LINEAR_OPS = frozenset({"==", "!=", "<", "<=", ">", ">=", "+", "in"})
_CONSTANT_CALLS = frozenset({"has"})
_REGEX_CALLS = frozenset({"matches"})  # compiles its pattern on every call
_REGEX_WEIGHT = 100

_TOKEN = re.compile(
    r"""
    (?P<skip>\s+|//[^\n]*)
    |(?P<raw>[bB]?[rR][bB]?(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*"))
    |(?P<str>[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
        |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[uU]?|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<id>[A-Za-z_]\w*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)


class OverBudget(ValueError):
    """A rule that costs too much whatever the request (refused at save)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """A rule's estimated cost as ``sum(weight * extent**degree)``, from its source alone."""

    terms: tuple[tuple[int, int], ...]  # (degree, weight), degrees ascending
    nesting: int  # the deepest comprehension macro nesting
    literal_extent: int = 0  # the longest list literal in the rule
    _cache: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def units(self, extent: int) -> int:
        n = max(extent, self.literal_extent, 1)
        hit = self._cache.get(n)
        if hit is None:
            hit = sum(weight * n**degree for degree, weight in self.terms)
            if len(self._cache) < 64:
                self._cache[n] = hit
        return hit

    @classmethod
    def of(cls, source: str) -> Cost:
        tokens = _tokens(source)
        weights: dict[int, int] = {}
        # open brackets: [kind ("(", "[" for a list literal, "idx", "{"), is a macro's, items]
        stack: list[list[Any]] = []
        depth = nesting = literal = 0
        pending_macro = False  # the next "(" opens a comprehension macro's arguments
        prev: tuple[str, str] = ("op", "(")
        for index, (kind, text) in enumerate(tokens):
            after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
            degree, weight = depth, 1
            if kind == "id" and after == "(":
                if text in MACROS and prev == ("op", "."):
                    degree = depth + (3 if text in _ACCUMULATING else 1)
                    pending_macro = True
                elif text in _REGEX_CALLS:
                    degree, weight = depth + 1, _REGEX_WEIGHT
                elif text not in _CONSTANT_CALLS:
                    degree = depth + 1
            elif text in _LINEAR_OPS and kind in ("op", "id"):
                degree = depth + 1
            elif kind == "op" and text in "([{":
                opened = "idx" if text == "[" and _is_operand(prev) else text
                stack.append([opened, pending_macro and text == "(", 1])
                if pending_macro and text == "(":
                    depth += 1
                    nesting = max(nesting, depth)
                pending_macro = False
            elif kind == "op" and text in ")]}" and stack:
                opened, is_macro, items = stack.pop()
                if is_macro:
                    depth -= 1
                if opened == "[":
                    literal = max(literal, items if prev != ("op", "[") else 0)
            elif kind == "op" and text == "," and stack:
                stack[-1][2] += 1
            _add(weights, degree, weight)
            prev = (kind, text)
        return cls(tuple(sorted(weights.items())), nesting, literal)


def _is_operand(token: tuple[str, str]) -> bool:
    return token[0] in ("id", "str", "raw", "num") or token[1] in (")", "]", "}")


def _add(weights: dict[int, int], degree: int, weight: int) -> None:
    weights[degree] = weights.get(degree, 0) + weight


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:  # a character the scanner does not know: skip it (the rule compiled)
            at += 1
            continue
        at = match.end()
        kind = match.lastgroup or "skip"
        if kind != "skip":
            out.append((kind, match.group()))
    return out


def check_rule(source: str) -> Cost:
    """The rule's cost, or ``OverBudget`` saying why it is refused at save."""
    cost = Cost.of(source)
    if cost.nesting > MAX_MACRO_NESTING:
        raise OverBudget(
            f"comprehension macros ({', '.join(sorted(MACROS))}) are nested {cost.nesting} deep;"
            f" at most {MAX_MACRO_NESTING} are allowed"
        )
    smallest = cost.units(RECORD_EXTENT)
    if smallest > REQUEST_BUDGET:
        raise OverBudget(
            f"the rule's estimated cost ({smallest:,} units even for the smallest inputs) is over"
            f" the evaluation budget of a request ({REQUEST_BUDGET:,} units)"
        )
    return cost


def check_custom(custom: Mapping[str, Any] | None) -> int:
    """``ValueError`` saying which limit ``custom`` is past, or the longest list or map in it.

    One walk over the values with an explicit stack (no recursion); ``custom`` is decoded JSON,
    so only dicts and lists nest. A typical ``custom`` of ten keys costs a few microseconds."""
    if not custom:
        return 0
    longest = values = 0
    stack: list[tuple[Any, int]] = [(custom, 1)]
    while stack:
        node, depth = stack.pop()
        size = len(node)
        if isinstance(node, dict):
            if size > CUSTOM_MAX_KEYS:
                raise ValueError(f"an object has {size} keys; at most {CUSTOM_MAX_KEYS} allowed")
            for key in node:
                if len(key) > CUSTOM_MAX_STRING:
                    raise ValueError(f"a key is longer than {CUSTOM_MAX_STRING} characters")
            items: Any = node.values()
        else:
            if size > CUSTOM_MAX_ITEMS:
                raise ValueError(f"a list has {size} items; at most {CUSTOM_MAX_ITEMS} allowed")
            items = node
        for value in items:
            if isinstance(value, str):
                if len(value) > CUSTOM_MAX_STRING:
                    raise ValueError(f"a string is longer than {CUSTOM_MAX_STRING} characters")
            elif isinstance(value, (dict, list)):
                if depth >= CUSTOM_MAX_DEPTH:
                    raise ValueError(f"is nested deeper than {CUSTOM_MAX_DEPTH} levels")
                stack.append((value, depth + 1))
        longest = max(longest, size)
        values += size
        if values > CUSTOM_MAX_VALUES:
            raise ValueError(f"has more than {CUSTOM_MAX_VALUES} values in all")
    return longest


@dataclass(slots=True)
class Allowance:
    """One request's budget: what its rules may still cost, and the offers that were over it."""

    extent: int
    left: int = REQUEST_BUDGET
    exceeded: list[str] = field(default_factory=list)

    def spend(self, offer_id: str, cost: Cost | None) -> bool:
        """Take the rule's cost from what is left, or say (False) it does not fit."""
        if cost is None:
            return True
        units = cost.units(self.extent)
        if units > self.left:
            self.exceeded.append(offer_id)
            return False
        self.left -= units
        return True

    def reason(self, cost: Cost) -> str:
        return (
            f"rule budget exceeded: estimated {cost.units(self.extent):,} units for this request,"
            f" {self.left:,} of {REQUEST_BUDGET:,} left"
        )
