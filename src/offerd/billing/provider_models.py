"""A site's billing provider as the admin API (and ``offerd apply``) takes it (DESIGN.md §7).

Validation messages never repeat the value given: the values are credentials, and an error body
is logged and shown in places a secret must not reach."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from offerd.common import urls

ProviderType = Literal["ledger", "stripe", "chargebee"]

# the fields of each type that are credentials: stored encrypted, never shown
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "ledger": (),
    "stripe": ("secret_key", "webhook_secret"),
    "chargebee": ("api_key", "webhook_password"),
}
# the credential the hint is made from
KEY_FIELD: dict[str, str] = {"stripe": "secret_key", "chargebee": "api_key"}

_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{8,247}$")
_STRIPE_WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=]{8,200}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces

Secret = Annotated[str, StringConstraints(min_length=1, max_length=255)]


def _api_base(value: str | None) -> str | None:
    if value is None:
        return None
    if not urls.is_http_url(value):
        raise ValueError("must be an http or https URL")
    return value.rstrip("/")


class _Provider(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerProvider(_Provider):
    type: Literal["ledger"]


class StripeProvider(_Provider):
    type: Literal["stripe"]
    secret_key: Secret
    webhook_secret: Secret
    api_base: Annotated[str, StringConstraints(max_length=500)] | None = None

    _base = field_validator("api_base")(_api_base)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not _STRIPE_KEY.match(value):
            raise ValueError(
                "must be a Stripe secret or restricted key (sk_test_…, sk_live_…, rk_test_…, "
                "rk_live_…)"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str) -> str:
        if not _STRIPE_WEBHOOK_SECRET.match(value):
            raise ValueError("must be a Stripe webhook signing secret (whsec_…)")
        return value


class ChargebeeProvider(_Provider):
    type: Literal["chargebee"]
    site: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    api_key: Secret
    webhook_username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    webhook_password: Secret
    api_base: Annotated[str, StringConstraints(max_length=500)] | None = None

    _base = field_validator("api_base")(_api_base)

    @field_validator("api_key", "webhook_password")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError("must be printable characters without spaces")
        return value


ProviderIn = Annotated[
    LedgerProvider | StripeProvider | ChargebeeProvider, Field(discriminator="type")
]
