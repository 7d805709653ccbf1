"""How a personalized offer looks on the wire (spec §4.1): content and the options' public
fields; billing actions, webhook URLs and email addresses stay on the server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from offerd.common import urls


def personalized_offer_resource(
    po_id: str,
    offer_id: str,
    content: Mapping[str, Any],
    options: Sequence[Mapping[str, Any]],
    values: Mapping[str, str | None],
) -> dict[str, Any]:
    return {
        "id": po_id,
        "offer_id": offer_id,
        "object": "personalized_offer",
        "content": {"title": content["title"], "description": content.get("description", "")},
        "options": [option_view(o, values) for o in options],
    }


def option_view(option: Mapping[str, Any], values: Mapping[str, str | None]) -> dict[str, Any]:
    view = {
        "id": option["id"],
        "label": option["label"],
        "processing_type": option["processing_type"],
        "processing_layout": option.get("processing_layout", "full_page"),
    }
    template = option.get("redirect_url")
    # The fulfillment id only exists once the option is accepted: such a URL is given then.
    if (
        option["processing_type"] == "url_redirect"
        and template
        and "fulfillment_id" not in urls.placeholders(template)
    ):
        view["redirect_url"] = urls.render(template, {**values, "option_id": option["id"]})
    return view
