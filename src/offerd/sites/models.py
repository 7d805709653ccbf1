"""Sites (tenants), their brand and settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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
    checkout_frame_ancestors: list[Annotated[str, StringConstraints(max_length=250)]] = Field(
        default_factory=list,
        max_length=20,
        description="Origins allowed to embed in_app hosted checkout pages in an iframe",
    )
    test_mode: bool = Field(default=False, description="Allow plain-http notification destinations")
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests to /api/v2 the site may make per minute, across all offerd "
        "processes; past it 429 api_request_limit_exceeded with Retry-After. Unset: no limit "
        "(Chargebee's plans use 150, 1000 or 3500)",
    )


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
            settings=SiteSettings.model_validate(row["settings"] or {}),
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
