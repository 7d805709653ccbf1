"""What an offer event is: the record every slice that logs or tells of events passes around.

It lives apart from the event log's service so that whoever only needs the type (the
fulfillments that write events in their own statements, the notifications that tell of them)
imports no I/O of the events slice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from offerd.edge.headers import Origin

EventType = Literal["viewed", "dismissed", "accepted", "fulfilled", "failed"]


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    site_id: str
    personalized_offer_id: str
    offer_id: str
    customer_id: str
    occurred_at: datetime
    origin: Origin
    subscription_id: str | None = None
    business_entity_id: str | None = None
    option_id: str | None = None
    fulfillment_id: str | None = None
    experiment_id: str | None = None
    experiment_arm: str | None = None
    id: str = ""

    def values(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies every value, on the accept path
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["origin"] = self.origin.as_dict()
        return values
