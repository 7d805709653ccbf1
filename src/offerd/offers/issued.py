"""A personalized offer as the other slices see it once issued: who it is for, what it showed,
and how the events and the fulfillment requests that tell of it render it. The slices that
read the row themselves (the accept, in its one statement) make one with ``IssuedOffer.of``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offerd.offers.views import personalized_offer_resource


@dataclass(frozen=True, slots=True)
class IssuedOffer:
    id: str
    offer_id: str
    customer_id: str
    subscription_id: str | None
    content: Mapping[str, Any]
    options: Sequence[Mapping[str, Any]]
    context: Mapping[str, Any] | None = None
    business_entity_id: str | None = None
    experiment_id: str | None = None
    experiment_arm: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> IssuedOffer:
        """From a ``personalized_offers`` row, or the part of one another slice's statement read."""
        return cls(
            id=row["id"],
            offer_id=row["offer_id"],
            customer_id=row["customer_id"],
            subscription_id=row["subscription_id"],
            content=row["content"],
            options=row["options"],
            context=row.get("context"),
            business_entity_id=row.get("business_entity_id"),
            experiment_id=row.get("experiment_id"),
            experiment_arm=row.get("experiment_arm"),
        )

    @property
    def external_user_id(self) -> str | None:
        external: str | None = (self.context or {}).get("user", {}).get("external_user_id")
        return external

    def option(self, option_id: str) -> Mapping[str, Any] | None:
        return next((o for o in self.options if o["id"] == option_id), None)

    def resource(self) -> dict[str, Any]:
        """As the API gave it out: the option URLs filled in for its subscriber."""
        values = {
            "customer_id": self.customer_id,
            "subscription_id": self.subscription_id,
            "personalized_offer_id": self.id,
        }
        return personalized_offer_resource(
            self.id, self.offer_id, self.content, self.options, values
        )
