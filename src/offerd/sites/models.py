"""Sites (tenants), their brand and settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The two kinds of API key a site has (spec §2): publishable keys call only the public operations.
KeyKind = Literal["full_access", "publishable"]

SITE_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$"

SiteId = Annotated[str, StringConstraints(pattern=SITE_ID_PATTERN)]


class Brand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]


class SiteSettings(BaseModel):
    """Per-site behaviour. Unknown keys are refused so that a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    personalized_offer_ttl_seconds: int = Field(
        default=86400, ge=60, le=30 * 86400, description="expires_at of personalized offers"
    )
    offer_events_no_content: bool = Field(
        default=False,
        description="Answer offer_events with 204 and no body, as Chargebee's spec says. Off by "
        "default: the official Python SDK (through 3.29) raises on an empty body.",
    )
    fulfillment_timeout_days: int = Field(
        default=7, ge=1, le=90, description="in_progress fulfillments fail after this"
    )
    url_redirect_auto_complete: bool = Field(
        default=False, description="Complete url_redirect fulfillments at creation"
    )
    # before checkout_frame_ancestors: its check reads it
    test_mode: bool = Field(
        default=False,
        description="Allow plain-http notification destinations and checkout_frame_ancestors",
    )
    checkout_frame_ancestors: list[Annotated[str, StringConstraints(max_length=250)]] = Field(
        default_factory=list,
        max_length=20,
        description="Origins allowed to embed in_app hosted checkout pages in an iframe: "
        "https://host[:port] or https://*.example.com (http:// with test_mode)",
    )
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests to /api/v2 the site may make per minute, across all offerd "
        "processes; past it 429 api_request_limit_exceeded with Retry-After. Unset: no limit "
        "(Chargebee's plans use 150, 1000 or 3500)",
    )

    save_window_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Days after an offer is fulfilled that its subscription must stay "
        "uncancelled to count as saved (the saves report)",
    )

    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        default="UTC",
        description="IANA time zone (e.g. Europe/Paris) of the site's report days, weeks and "
        "months; changing it moves only new counts: run `offerd reports rebuild` after",
    )

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from None
        return value

    @field_validator("checkout_frame_ancestors")
    @classmethod
    def _origins(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if (info.context or {}).get("stored"):
            return value  # checked when saved; read back as it is (the CSP keeps origins only)
        test_mode = bool(info.data.get("test_mode"))
        for source in value:
            problem = frame_ancestor_problem(source, allow_http=test_mode)
            if problem is not None:
                raise ValueError(f"{source!r} {problem}")
        return value


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<wildcard>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*)"
    r"(?::(?P<port>[0-9]{1,5}|\*))?",
    re.ASCII,
)


def frame_ancestor_problem(source: str, *, allow_http: bool) -> str | None:
    """Why ``source`` is not an origin a CSP ``frame-ancestors`` may name, or None.

    Only ``https://host[:port]`` and ``https://*.example.com`` (``http://`` in test mode): the
    value is copied into a response header, so anything else (``;`` starting another directive,
    a quote, a space, CR/LF, a path, a bare ``*`` letting every site frame the page) is refused.
    """
    match = _ORIGIN.fullmatch(source)
    if match is None:
        return "is not an origin: scheme://host[:port], with no path, spaces or quotes"
    if match["scheme"] == "http" and not allow_http:
        return "is plain http: only allowed with the site's test_mode"
    if match["wildcard"] and "." not in match["host"]:
        return "is too wide a wildcard: name a domain (https://*.example.com)"
    port = match["port"]
    if port is not None and port != "*" and not 0 < int(port) < 65536:
        return "has a port out of range"
    return None


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    brand: Brand | None = None
    brands: list[Brand] = Field(default_factory=list, max_length=50)
    settings: SiteSettings = Field(default_factory=SiteSettings)

    @model_validator(mode="after")
    def _brands(self) -> SiteIn:
        if self.brand is not None and self.brands:
            raise ValueError("give brand (one) or brands (several), not both")
        ids = [b.id for b in self.brands]
        if len(set(ids)) != len(ids):
            raise ValueError("brand ids must be unique")
        return self

    @property
    def all_brands(self) -> list[Brand]:
        return self.brands or ([self.brand] if self.brand else [])


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    brands: tuple[Brand, ...]
    settings: SiteSettings
    catalog_version: int

    @property
    def brand(self) -> Brand | None:
        """The default brand (the first)."""
        return self.brands[0] if self.brands else None

    @property
    def multi_brand(self) -> bool:
        return len(self.brands) > 1

    def brand_by_id(self, brand_id: str | None) -> Brand | None:
        return next((b for b in self.brands if b.id == brand_id), None)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Site:
        return cls(
            id=row["id"],
            name=row["name"],
            brands=tuple(Brand.model_validate(b) for b in row.get("brands") or []),
            settings=SiteSettings.model_validate(row["settings"] or {}, context={"stored": True}),
            catalog_version=row["catalog_version"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "site",
            "name": self.name,
            "brand": self.brand.model_dump() if self.brand else None,
            "brands": [b.model_dump() for b in self.brands],
            "settings": self.settings.model_dump(),
        }
