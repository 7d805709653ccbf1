"""Sites (tenants), their brand and settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    brand: Brand | None = None
    settings: SiteSettings = Field(default_factory=SiteSettings)


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    brand: Brand | None
    settings: SiteSettings
    catalog_version: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Site:
        return cls(
            id=row["id"],
            name=row["name"],
            brand=Brand.model_validate(row["brand"]) if row["brand"] else None,
            settings=SiteSettings.model_validate(row["settings"] or {}),
            catalog_version=row["catalog_version"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "site",
            "name": self.name,
            "brand": self.brand.model_dump() if self.brand else None,
            "settings": self.settings.model_dump(),
        }
