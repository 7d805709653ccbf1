"""The offer definition the admin API takes (DESIGN.md §6), validated on save."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from offerd.billing.actions import BillingAction
from offerd.common import urls
from offerd.common.timestamps import UnixSeconds

ProcessingType = Literal["billing_update", "checkout", "url_redirect", "webhook", "email"]
ProcessingLayout = Literal["in_app", "full_page"]
OfferStatus = Literal["draft", "active", "paused", "archived"]

Id50 = Annotated[str, StringConstraints(min_length=1, max_length=50)]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Content(_Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=250)]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""


class Option(_Strict):
    id: Id50
    label: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    processing_type: ProcessingType
    processing_layout: ProcessingLayout = "full_page"
    billing_action: BillingAction | None = None
    redirect_url: Annotated[str, StringConstraints(max_length=250)] | None = None
    webhook_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    email_to: list[Annotated[str, StringConstraints(max_length=254)]] | None = Field(
        default=None, min_length=1, max_length=20
    )

    @field_validator("redirect_url")
    @classmethod
    def _redirect_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = urls.unknown_placeholders(value)
        if unknown:
            known = ", ".join("{" + p + "}" for p in sorted(urls.PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; known: {known}")
        if not urls.is_http_url(urls.render(value, {})):
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not urls.is_http_url(value):
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("email_to")
    @classmethod
    def _emails(cls, value: list[str] | None) -> list[str] | None:
        for address in value or []:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @model_validator(mode="after")
    def _fits_processing_type(self) -> Option:
        kind = self.processing_type
        if kind in ("billing_update", "checkout") and self.billing_action is None:
            raise ValueError(f"a {kind} option needs a billing_action")
        if kind not in ("billing_update", "checkout") and self.billing_action is not None:
            raise ValueError(f"a {kind} option takes no billing_action")
        if kind == "url_redirect" and not self.redirect_url:
            raise ValueError("a url_redirect option needs a redirect_url")
        if kind == "webhook" and not self.webhook_url:
            raise ValueError("a webhook option needs a webhook_url")
        if kind == "email" and not self.email_to:
            raise ValueError("an email option needs email_to")
        return self


LocaleTag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]


class Limit(_Strict):
    count: int = Field(ge=1, le=1000)
    period_days: int = Field(ge=1, le=3650)


class Guards(_Strict):
    """Frequency guards (see ``offerd.offers.guards``)."""

    dismiss_cooldown_days: int | None = Field(default=None, ge=1, le=3650)
    max_views: Limit | None = None
    accept_cooldown_days: int | None = Field(default=None, ge=1, le=3650)
    max_acceptances: Limit | None = None


class TranslatedContent(_Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=250)] | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TranslatedOption(_Strict):
    label: Annotated[str, StringConstraints(min_length=1, max_length=50)]


class Translation(_Strict):
    content: TranslatedContent | None = None
    options: dict[str, TranslatedOption] = Field(default_factory=dict, max_length=10)


class OfferIn(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    status: OfferStatus = "draft"
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    eligibility: Annotated[str, StringConstraints(max_length=4000)] | None = None
    content: Content
    options: list[Option] = Field(min_length=1, max_length=10)
    starts_at: UnixSeconds | None = Field(default=None, description="Unix seconds")
    ends_at: UnixSeconds | None = Field(default=None, description="Unix seconds")
    business_entity_id: Annotated[str, StringConstraints(max_length=50)] | None = None
    brand_id: Annotated[str, StringConstraints(max_length=50)] | None = None
    guards: Guards | None = None
    translations: dict[LocaleTag, Translation] = Field(default_factory=dict, max_length=100)
    default_locale: LocaleTag | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OfferIn:
        ids = [o.id for o in self.options]
        if len(set(ids)) != len(ids):
            raise ValueError("option ids must be unique within an offer")
        for tag, translation in self.translations.items():
            unknown = set(translation.options) - set(ids)
            if unknown:
                raise ValueError(f"translation {tag!r} names unknown options {sorted(unknown)}")
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise ValueError("ends_at must be after starts_at")
        return self


class Arm(_Strict):
    id: Id50
    offer_id: Id50 | None = Field(default=None, description="None: the holdout arm (no offer)")
    weight: int = Field(ge=1, le=10_000)


class ExperimentIn(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    status: Literal["draft", "running", "stopped"] = "draft"
    arms: list[Arm] = Field(min_length=2, max_length=20)

    @model_validator(mode="after")
    def _arms(self) -> ExperimentIn:
        ids = [a.id for a in self.arms]
        if len(set(ids)) != len(ids):
            raise ValueError("arm ids must be unique")
        offers = [a.offer_id for a in self.arms if a.offer_id is not None]
        if len(set(offers)) != len(offers):
            raise ValueError("an offer can be in only one arm")
        if len(offers) < len(self.arms) - 1:
            raise ValueError("at most one arm can be the holdout (no offer_id)")
        if not offers:
            raise ValueError("an experiment needs at least one arm with an offer")
        return self
