"""Reading a decoded form's fields safely (a field may be absent, or given as a structure where
text was expected): pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(form: Mapping[str, Any], name: str) -> str:
    """A posted field as text ('' when absent or given as a structure)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def mapping(form: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = form.get(name)
    return value if isinstance(value, dict) else {}


def items(form: Mapping[str, Any], name: str) -> list[Any]:
    value = form.get(name)
    return value if isinstance(value, list) else []
