"""Cursor paging of the admin lists (the event log, the delivery log, failed jobs): newest
first, ``limit`` rows and a ``next_cursor`` when there are more. A store reads ``limit + 1`` rows
from before the cursor; ``page`` keeps ``limit`` of them and says where the next page starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from offerd.edge.errors import ParamWrongValue

Row = TypeVar("Row")


def numeric_cursor(cursor: str | None) -> int | None:
    """A cursor that is a row's sequence number (``None``: the first page)."""
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ParamWrongValue("cursor", "is not a cursor this API gave out")
    return int(cursor)


def page(
    name: str,
    rows: Sequence[Row],
    *,
    limit: int,
    render: Callable[[Row], Any],
    cursor_of: Callable[[Row], object],
) -> dict[str, Any]:
    """``{name: [...], "next_cursor"?}`` from the ``limit + 1`` rows a store read."""
    kept = rows[:limit]
    body: dict[str, Any] = {name: [render(r) for r in kept]}
    if len(rows) > limit:
        body["next_cursor"] = str(cursor_of(kept[-1]))
    return body
