"""What a notification event looks like on Slack, in Segment and in an email (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from offerd import __version__

TITLES = {
    "offer_accepted": "Offer accepted",
    "offer_fulfillment_completed": "Offer fulfilled",
    "offer_fulfillment_failed": "Offer fulfillment failed",
    "offer_viewed": "Offer viewed",
    "offer_dismissed": "Offer dismissed",
}

SEGMENT_NAMES = {
    "offer_accepted": "Offer Accepted",
    "offer_fulfillment_completed": "Offer Fulfilled",
    "offer_fulfillment_failed": "Offer Fulfillment Failed",
    "offer_viewed": "Offer Viewed",
    "offer_dismissed": "Offer Dismissed",
}


def facts(event: Mapping[str, Any]) -> dict[str, Any]:
    """The handful of facts every rendering shows."""
    content = event["content"]
    po = content["personalized_offer"]
    about = content.get("offer_event", {})
    fulfillment = content.get("offer_fulfillment")
    option_id = about.get("option_id") or (fulfillment or {}).get("option_id")
    option = next((o for o in po["options"] if o["id"] == option_id), None)
    status = fulfillment["status"] if fulfillment else about.get("type")
    error = (fulfillment or {}).get("error")
    return {
        "title": TITLES.get(event["event_type"], event["event_type"]),
        "offer_title": po["content"]["title"],
        "offer_id": po["offer_id"],
        "personalized_offer_id": po["id"],
        "option_id": option_id,
        "option_label": option["label"] if option else None,
        "processing_type": (fulfillment or {}).get("processing_type")
        or (option["processing_type"] if option else None),
        "fulfillment_id": (fulfillment or {}).get("id"),
        "customer_id": about.get("customer_id"),
        "subscription_id": about.get("subscription_id"),
        "external_user_id": about.get("external_user_id"),
        "status": status,
        "error": error,
        "occurred_at": datetime.fromtimestamp(event["occurred_at"], UTC),
    }


def _strip(html: str) -> str:
    return str(Markup(html).striptags())


def _mrkdwn(text: object) -> str:
    """Slack's escaping: its markup is made of &, < and > (links, mentions)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(event: Mapping[str, Any], *, delivery_id: str, delivery_url: str) -> dict[str, Any]:
    f = facts(event)
    offer = _mrkdwn(_strip(f["offer_title"]))
    option = _mrkdwn(f["option_label"] or f["option_id"] or "—")
    status = f["status"] or "—"
    if f["error"]:
        status += f" ({f['error']['code']}: {f['error']['message']})"
    status = _mrkdwn(status)
    customer = _mrkdwn(f["customer_id"])
    return {
        "text": f"{f['title']}: {offer} — customer {customer}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f["title"]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Offer*\n{offer}"},
                    {"type": "mrkdwn", "text": f"*Option*\n{option}"},
                    {"type": "mrkdwn", "text": f"*Customer*\n`{customer}`"},
                    {"type": "mrkdwn", "text": f"*Status*\n{status}"},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Delivery `{delivery_id}` · <{delivery_url}|see it in the console>"
                        + (
                            f" · fulfillment `{f['fulfillment_id']}`" if f["fulfillment_id"] else ""
                        ),
                    }
                ],
            },
        ],
    }


def segment_track(event: Mapping[str, Any]) -> dict[str, Any]:
    f = facts(event)
    message: dict[str, Any] = {
        "type": "track",
        "event": SEGMENT_NAMES[event["event_type"]],
        "messageId": event["id"],
        "timestamp": f["occurred_at"].isoformat().replace("+00:00", "Z"),
        "properties": {
            "offer_id": f["offer_id"],
            "option_id": f["option_id"],
            "personalized_offer_id": f["personalized_offer_id"],
            "fulfillment_id": f["fulfillment_id"],
            "processing_type": f["processing_type"],
            "subscription_id": f["subscription_id"],
            "status": f["status"],
        },
        "context": {"library": {"name": "offerd", "version": __version__}},
    }
    if f["customer_id"]:
        message["userId"] = f["customer_id"]
    else:
        message["anonymousId"] = f["external_user_id"]
    return message


def email_context(event: Mapping[str, Any], *, delivery_url: str) -> dict[str, Any]:
    f = facts(event)
    return {**f, "offer_title": _strip(f["offer_title"]), "delivery_url": delivery_url}
