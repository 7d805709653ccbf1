"""Decisioning through the official ``chargebee`` Python SDK, unmodified, against a live offerd:
a localized offer of an experiment's variant, and a holdout customer's empty answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chargebee import Chargebee

# The compat fixtures (a live server on *.grow.localhost, DNS for it, SDK clients), reused as they
# are: importing them makes them available to this module.
from tests.compat.conftest import chargebee_client, grow_server, localhost_dns  # noqa: F401
from tests.offers.test_decisioning import ARMS, customers_in, nonzero
from tests.support.catalog import offer
from tests.support.server import LiveServer
from tests.support.sync import Admin, seed

pytestmark = pytest.mark.compat

ClientFactory = Callable[..., Chargebee]

TRANSLATIONS = {
    "fr": {
        "content": {"title": "Avant de partir", "description": "Un petit cadeau."},
        "options": {"discount": {"label": "20 % de remise"}},
    }
}


@pytest.fixture
def keys(grow_server: LiveServer) -> dict[str, str]:  # noqa: F811
    """acme with the usual catalog, plus variants a and b (localized) in a running experiment
    with a holdout arm."""
    keys = seed(grow_server.base_url)
    admin = Admin(grow_server.base_url)
    for offer_id, title in (("a", "Variant A"), ("b", "Variant B")):
        admin.put(
            f"/sites/acme/offers/{offer_id}",
            offer(
                priority=20,
                content={"title": title, "description": "Default."},
                translations={
                    "fr": {**TRANSLATIONS["fr"], "content": {"title": f"{title} (fr)"}},
                },
                default_locale="en",
            ),
        )
    admin.put("/sites/acme/experiments/exp", {"name": "E", "status": "running", "arms": ARMS})
    return keys


def test_a_localized_variant_through_the_sdk(
    chargebee_client: ClientFactory,  # noqa: F811
    keys: dict[str, str],
    grow_server: LiveServer,  # noqa: F811
) -> None:
    cb = chargebee_client(keys["publishable"])
    for arm, offer_id in (("A", "a"), ("B", "b")):
        (customer,) = customers_in(arm, 1)
        res = cb.PersonalizedOffer.personalized_offers(
            {"customer_id": customer, "request_context": {"locale": "fr-CA"}}
        )
        assert res.http_status_code == 200
        assert len(res.personalized_offers) == 1
        po = res.personalized_offers[0]
        assert po.offer_id == offer_id
        title = "Variant A" if arm == "A" else "Variant B"
        assert po.content.title == f"{title} (fr)"
        # the description was not translated: the default one is kept
        assert po.content.description == "Default."
        assert po.options[0].label == "20 % de remise"
        assert po.options[1].label == "Go Pro"
        assert isinstance(res.expires_at, int)

        # the choice was recorded: the arm and the locale on the personalized offer
        events = Admin(grow_server.base_url)
        viewed = cb.OfferEvent.offer_events({"personalized_offer_id": po.id, "type": "viewed"})
        assert viewed.http_status_code == 200
        r = events.http.get("/sites/acme/offer_events", params={"personalized_offer_id": po.id})
        (event,) = r.json()["offer_events"]
        assert (event["experiment_id"], event["experiment_arm"]) == ("exp", arm)


def test_a_holdout_customer_gets_an_empty_list_the_sdk_parses(
    chargebee_client: ClientFactory,  # noqa: F811
    keys: dict[str, str],
    grow_server: LiveServer,  # noqa: F811
) -> None:
    cb = chargebee_client(keys["full_access"])
    (customer,) = customers_in("holdout", 1)
    res = cb.PersonalizedOffer.personalized_offers(
        {"customer_id": customer, "request_context": {"locale": "fr-FR"}}
    )
    assert res.http_status_code == 200
    assert res.personalized_offers == []
    assert isinstance(res.expires_at, int)
    # and the same customer is in the holdout on every call
    again = cb.PersonalizedOffer.personalized_offers({"customer_id": customer})
    assert again.personalized_offers == []
    r = Admin(grow_server.base_url).http.get("/sites/acme/experiments/exp")
    assert nonzero(r.json()["results"])["holdout"] == {"served": 2}
