"""The architecture, pinned: who may import whom (ARCHITECTURE.md). The imports of every
``offerd`` module are read from its source (``ast``, nothing is imported), in three kinds: at
module top level, under ``if TYPE_CHECKING:``, and inside functions (the lazy imports of the
command line and the registries). Each rule below names the kinds it counts.

The checks are functions of the import list, so the tests at the bottom can show each one fails
on an import that breaks it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
SLICES = frozenset(
    {
        "audit",
        "billing",
        "checkout",
        "console",
        "events",
        "fulfillments",
        "notifications",
        "offers",
        "sites",
    }
)
Kind = Literal["top", "type_checking", "function"]

# Slice-level import cycles that exist on purpose, with why. The processors of the fulfillments
# are found through a table in ``fulfillments.processors`` that names each module, and the
# checkout processor opens the checkout slice's hosted page on accept, while the page completes
# or fails its fulfillment through ``fulfillments.transitions``. Registering processors from
# outside (the processors' typed registry) would turn the first edge around.
ALLOWED_SLICE_EDGES_IN_CYCLES = frozenset({("fulfillments", "checkout")})

pytestmark = pytest.mark.unit


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module, e.g. offerd.events.api
    target: str  # the imported module, e.g. offerd.offers.service
    kind: Kind

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.kind})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> Iterable[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:  # relative: resolve against the importing package
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    for alias in node.names:
        # ``from offerd.x import y``: y is a module of its own, or a name in offerd.x
        full = f"{module}.{alias.name}"
        yield full if _is_module(full) else module


def imports_of(path: Path) -> list[Import]:
    source = _module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, kind: Kind) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, package):
                    if target.split(".")[0] == "offerd":
                        found.append(Import(source, target, kind))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                visit(child, "type_checking" if kind == "top" else kind)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "function")
            else:
                visit(child, kind)

    visit(ast.parse(path.read_text(), str(path)), "top")
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted((SRC / "offerd").rglob("*.py")) for i in imports_of(path)]


def slice_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SLICES else None


def _is_store(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "store" or last.endswith("_store")


# The rules: each returns the imports that break it.


def slice_cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Cycles between slices through top-level imports (the allowed edges left out)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        a, b = slice_of(i.source), slice_of(i.target)
        if i.kind == "top" and a and b and a != b and (a, b) not in ALLOWED_SLICE_EDGES_IN_CYCLES:
            graph.setdefault(a, set()).add(b)
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least slice
                walk(nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return cycles


def module_cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Cycles between modules through top-level imports: each such cycle is an import-order
    accident waiting to happen."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.kind == "top" and i.source != i.target:
            graph.setdefault(i.source, set()).add(i.target)
    cycles: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str], on_path: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt], on_path | {nxt})
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start], {start})
    return cycles


def ground_importing_slices(imports: Iterable[Import]) -> list[Import]:
    """``offerd.common`` is the ground every slice stands on: it imports no slice."""
    return [i for i in imports if i.source.startswith("offerd.common") and slice_of(i.target)]


def stores_reached_from_outside(imports: Iterable[Import]) -> list[Import]:
    """A slice's SQL is its own: only its own modules import its store(s)."""
    return [
        i
        for i in imports
        if _is_store(i.target) and slice_of(i.target) and slice_of(i.source) != slice_of(i.target)
    ]


def routers_on_stores(imports: Iterable[Import]) -> list[Import]:
    """Routers are thin: they call services, never a store (their own slice's either)."""
    return [i for i in imports if i.source.endswith(".api") and _is_store(i.target)]


def views_in_notifications(imports: Iterable[Import]) -> list[Import]:
    """Notifications render what they are given: no other slice's views."""
    return [
        i
        for i in imports
        if slice_of(i.source) == "notifications"
        and slice_of(i.target) not in (None, "notifications")
        and i.target.endswith(".views")
    ]


def event_log_sending(imports: Iterable[Import]) -> list[Import]:
    """The event log only writes: whoever records an event fans it out."""
    return [
        i
        for i in imports
        if i.source == "offerd.events.service" and slice_of(i.target) == "notifications"
    ]


# The code as it is.


def test_no_cycles_between_slices() -> None:
    assert slice_cycles(all_imports()) == []


def test_no_cycles_between_modules() -> None:
    assert module_cycles(all_imports()) == []


def test_the_ground_imports_no_slice() -> None:
    assert [str(i) for i in ground_importing_slices(all_imports())] == []


def test_no_slice_reaches_into_another_slices_store() -> None:
    assert [str(i) for i in stores_reached_from_outside(all_imports())] == []


def test_routers_call_services_not_stores() -> None:
    assert [str(i) for i in routers_on_stores(all_imports())] == []


def test_a_router_on_a_store_is_caught() -> None:
    bad = _imp("offerd.events.api", "offerd.events.store")
    fine = _imp("offerd.events.api", "offerd.events.service")
    assert routers_on_stores([bad, fine]) == [bad]


def test_notifications_import_no_other_slices_views() -> None:
    assert [str(i) for i in views_in_notifications(all_imports())] == []


def test_the_event_log_does_not_send() -> None:
    assert [str(i) for i in event_log_sending(all_imports())] == []


def test_the_reader_sees_every_kind_of_import() -> None:
    """The rules above are only as good as the reader: it finds imports of each kind."""
    found = {(i.source, i.target, i.kind) for i in all_imports()}
    assert ("offerd.events.api", "offerd.events.reports", "top") in found
    assert ("offerd.notifications.fanout", "offerd.events.models", "type_checking") in found
    assert ("offerd.cli.main", "offerd.cli.catalog_file", "function") in found


# Each rule catches what breaks it.


def _imp(source: str, target: str, kind: Kind = "top") -> Import:
    return Import(source, target, kind)


def test_a_cycle_between_slices_is_caught() -> None:
    imports = [
        _imp("offerd.events.service", "offerd.notifications.fanout"),
        _imp("offerd.notifications.fanout", "offerd.events.models"),
    ]
    assert slice_cycles(imports) == [["events", "notifications", "events"]]
    typing_only = _imp("offerd.notifications.fanout", "offerd.events.models", "type_checking")
    assert slice_cycles([imports[0], typing_only]) == []


def test_a_cycle_between_modules_is_caught() -> None:
    imports = [
        _imp("offerd.events.service", "offerd.notifications.fanout"),
        _imp("offerd.notifications.fanout", "offerd.events.service"),
    ]
    assert module_cycles(imports) == [
        ["offerd.events.service", "offerd.notifications.fanout", "offerd.events.service"]
    ]


def test_the_ground_importing_a_slice_is_caught() -> None:
    bad = _imp("offerd.common.templating", "offerd.billing.pricing")
    fine = _imp("offerd.common.templating", "offerd.common.money")
    assert ground_importing_slices([bad, fine]) == [bad]


def test_reaching_into_another_slices_store_is_caught() -> None:
    bad = [
        _imp("offerd.events.api", "offerd.offers.store"),
        _imp("offerd.cli.catalog_file", "offerd.notifications.channel_store", "function"),
        _imp("offerd.edge.auth", "offerd.sites.store"),
    ]
    fine = [_imp("offerd.offers.api", "offerd.offers.store")]
    assert stores_reached_from_outside(bad + fine) == bad


def test_notifications_importing_views_is_caught() -> None:
    bad = _imp("offerd.notifications.payloads", "offerd.billing.views", "function")
    assert views_in_notifications([bad]) == [bad]


def test_the_event_log_sending_is_caught() -> None:
    bad = _imp("offerd.events.service", "offerd.notifications.fanout", "type_checking")
    assert event_log_sending([bad]) == [bad]
