"""Jinja2 environments for the HTML pages and emails offerd renders (autoescaped)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from offerd.common.money import money


def _date(value: datetime | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%b %-d, %Y")


@cache
def environment(package: str) -> Environment:
    env = Environment(
        # the slice's own templates, then the shared ones (base.html)
        loader=ChoiceLoader(
            [PackageLoader(package, "templates"), PackageLoader("offerd", "templates")]
        ),
        autoescape=select_autoescape(["html", "htm", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["date"] = _date
    return env


def render(package: str, name: str, **context: object) -> str:
    return environment(package).get_template(name).render(**context)
