"""Redirect URL templates: ``{customer_id}``-style placeholders, filled in URL-encoded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

PLACEHOLDERS = frozenset(
    {"customer_id", "subscription_id", "personalized_offer_id", "fulfillment_id", "option_id"}
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def unknown_placeholders(template: str) -> set[str]:
    return placeholders(template) - PLACEHOLDERS


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill every known placeholder; one with no value (no subscription, say) becomes empty."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            return match.group(0)
        return quote(values.get(name) or "", safe="")

    return _PLACEHOLDER.sub(fill, template)


def fill(
    template: str,
    *,
    customer_id: str | None,
    subscription_id: str | None,
    personalized_offer_id: str,
    option_id: str,
    fulfillment_id: str | None = None,
) -> str:
    """An option's redirect URL for one fulfillment (or, before there is one, without its id)."""
    return render(
        template,
        {
            "customer_id": customer_id,
            "subscription_id": subscription_id,
            "personalized_offer_id": personalized_offer_id,
            "fulfillment_id": fulfillment_id,
            "option_id": option_id,
        },
    )


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
