"""The offers flow through the official ``chargebee`` PyPI package (pinned in pyproject), unmodified."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from chargebee import APIError, Chargebee, InvalidRequestError

from tests.compat.helpers import Site, offer_events_log
from tests.support.sync import Admin

pytestmark = pytest.mark.compat

ClientFactory = Callable[..., Chargebee]
ASK = {
    "customer_id": "cus_1",
    "subscription_id": "sub_1",
    "request_context": {"locale": "en-US", "timezone": "Europe/Berlin", "user_agent": "compat"},
    "custom": {"viewCount": 6},
}


def personalized_offer_id(cb: Chargebee) -> str:
    res = cb.PersonalizedOffer.personalized_offers(ASK)
    assert len(res.personalized_offers) == 1
    po_id: str = res.personalized_offers[0].id
    return po_id


def test_offer_flow(chargebee_client: ClientFactory, acme: Site, admin: Admin) -> None:
    cb = chargebee_client(acme.full_access)

    # personalized_offers: one offer, every field parsed into the SDK's response types
    offers = cb.PersonalizedOffer.personalized_offers(ASK)
    assert offers.http_status_code == 200
    assert offers.is_idempotency_replayed is False
    assert isinstance(offers.expires_at, int)
    assert len(offers.personalized_offers) == 1
    po = offers.personalized_offers[0]
    assert po.offer_id == "stay"
    assert po.content.title == "Before you go"
    assert po.content.description == "Here is something for you."
    assert [(o.id, o.processing_type) for o in po.options] == [
        ("discount", "billing_update"),
        ("upgrade", "checkout"),
        ("talk", "url_redirect"),
        ("gift", "webhook"),
        ("call", "email"),
    ]
    assert {o.processing_layout for o in po.options} <= {"in_app", "full_page"}

    # offer_events: the Python SDK needs a JSON body, which offerd sends by default
    viewed = cb.OfferEvent.offer_events(
        {"personalized_offer_id": po.id, "type": cb.OfferEvent.Type.VIEWED}
    )
    assert viewed.http_status_code == 200
    assert viewed.is_idempotency_replayed is False

    # accept the url_redirect option: 202, in progress, the redirect URL filled in
    accepted = cb.OfferFulfillment.offer_fulfillments(
        {"personalized_offer_id": po.id, "option_id": "talk"}
    )
    assert accepted.http_status_code == 202
    assert accepted.hosted_page is None
    f = accepted.offer_fulfillment
    assert (f.personalized_offer_id, f.option_id) == (po.id, "talk")
    assert f.processing_type == "url_redirect"
    assert f.status == "in_progress"
    assert isinstance(f.created_at, int)
    assert f.completed_at is None and f.failed_at is None and f.error is None
    assert f.redirect_url == (
        f"https://merchant.example/save?c=cus_1&s=sub_1&po={po.id}&f={f.id}&o=talk"
    )

    got = cb.OfferFulfillment.offer_fulfillments_get(f.id)
    assert got.http_status_code == 200
    assert got.offer_fulfillment.id == f.id
    assert got.offer_fulfillment.status == "in_progress"
    assert got.offer_fulfillment.redirect_url == f.redirect_url

    updated = cb.OfferFulfillment.offer_fulfillments_update(
        f.id, {"id": f.id, "status": cb.OfferFulfillment.Status.COMPLETED}
    )
    assert updated.http_status_code == 200
    assert updated.is_idempotency_replayed is False
    assert updated.offer_fulfillment.status == "completed"
    assert isinstance(updated.offer_fulfillment.completed_at, int)
    assert updated.offer_fulfillment.completed_at >= f.created_at

    again = cb.OfferFulfillment.offer_fulfillments_get(f.id)
    assert again.offer_fulfillment.status == "completed"
    assert again.offer_fulfillment.completed_at == updated.offer_fulfillment.completed_at
    assert again.offer_fulfillment.failed_at is None and again.offer_fulfillment.error is None

    # what offerd recorded from the SDK's calls
    assert offer_events_log(admin, "acme", po.id) == ["viewed", "accepted", "fulfilled"]


def test_accepting_billing_update_option(
    chargebee_client: ClientFactory, acme: Site, admin: Admin
) -> None:
    cb = chargebee_client(acme.full_access)
    po_id = personalized_offer_id(cb)

    accepted = cb.OfferFulfillment.offer_fulfillments(
        {"personalized_offer_id": po_id, "option_id": "discount"}
    )
    assert accepted.http_status_code == 202
    assert accepted.hosted_page is None
    f = accepted.offer_fulfillment
    assert (f.option_id, f.processing_type) == ("discount", "billing_update")
    # no worker runs in these tests: it stays in progress
    assert f.status == "in_progress"
    assert f.completed_at is None and f.error is None

    got = cb.OfferFulfillment.offer_fulfillments_get(f.id)
    assert (got.offer_fulfillment.id, got.offer_fulfillment.status) == (f.id, "in_progress")
    assert offer_events_log(admin, "acme", po_id) == ["accepted"]


def test_unknown_personalized_offer(chargebee_client: ClientFactory, acme: Site) -> None:
    cb = chargebee_client(acme.full_access)
    with pytest.raises(InvalidRequestError) as raised:
        cb.OfferFulfillment.offer_fulfillments(
            {"personalized_offer_id": "po_does_not_exist", "option_id": "talk"}
        )
    err = raised.value
    assert err.http_status_code == 404
    assert err.api_error_code == "resource_not_found"
    assert err.type == "invalid_request"
    assert err.param == "personalized_offer_id"
    assert err.error_code == "resource_not_found"


def test_publishable_key_cannot_retrieve(chargebee_client: ClientFactory, acme: Site) -> None:
    cb = chargebee_client(acme.full_access)
    po_id = personalized_offer_id(cb)
    # a publishable key may accept (the browser's part) ...
    public = chargebee_client(acme.publishable)
    f = public.OfferFulfillment.offer_fulfillments(
        {"personalized_offer_id": po_id, "option_id": "talk"}
    ).offer_fulfillment
    # ... but not read or report outcomes
    with pytest.raises(APIError) as raised:
        public.OfferFulfillment.offer_fulfillments_get(f.id)
    err = raised.value
    assert err.http_status_code == 403
    assert err.api_error_code == "api_authorization_failed"
    assert err.type == "untyped"
    assert cb.OfferFulfillment.offer_fulfillments_get(f.id).offer_fulfillment.id == f.id


def test_key_of_another_site_is_refused_by_host(
    chargebee_client: ClientFactory, acme: Site, admin: Admin
) -> None:
    # the SDK names the site only in the host ({site}.grow.localhost): offerd must check it
    admin.put("/sites/other", {"name": "Other", "settings": {}})
    other_key = admin.key("other", "full_access")
    with pytest.raises(APIError) as raised:
        chargebee_client(other_key, site="acme").PersonalizedOffer.personalized_offers(ASK)
    assert raised.value.http_status_code == 401
    assert raised.value.api_error_code == "api_authentication_failed"
    # the same key on its own host works (other has no offers: an empty list, not an error)
    res = chargebee_client(other_key, site="other").PersonalizedOffer.personalized_offers(ASK)
    assert res.personalized_offers == []
    assert isinstance(res.expires_at, int)


def test_idempotent_replay(chargebee_client: ClientFactory, acme: Site, admin: Admin) -> None:
    cb = chargebee_client(acme.full_access)
    po_id = personalized_offer_id(cb)
    headers = {"chargebee-idempotency-key": str(uuid.uuid4())}
    body = {"personalized_offer_id": po_id, "option_id": "talk"}

    first = cb.OfferFulfillment.offer_fulfillments(body, headers)
    assert first.http_status_code == 202
    assert first.is_idempotency_replayed is False
    second = cb.OfferFulfillment.offer_fulfillments(body, headers)
    assert second.http_status_code == 202
    assert second.is_idempotency_replayed is True
    assert second.offer_fulfillment.id == first.offer_fulfillment.id
    assert second.offer_fulfillment.raw_data == first.offer_fulfillment.raw_data

    # the same key with another body is refused, whatever the body
    with pytest.raises(InvalidRequestError) as raised:
        cb.OfferFulfillment.offer_fulfillments({**body, "option_id": "gift"}, headers)
    err = raised.value
    assert err.http_status_code == 422
    assert err.api_error_code == "unable_to_process_request"
    assert err.type == "invalid_request"

    # the replay did not accept twice
    assert offer_events_log(admin, "acme", po_id) == ["accepted"]
