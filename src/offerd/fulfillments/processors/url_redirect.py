"""url_redirect: the merchant fulfils behind its redirect URL and reports back with an update.
With the site setting ``url_redirect_auto_complete`` it is complete at once instead."""

from __future__ import annotations

from offerd.fulfillments import transitions
from offerd.fulfillments.processors import Accepting, Outcome
from offerd.sites.models import Site


def follows_up(site: Site) -> bool:
    return site.settings.url_redirect_auto_complete


async def on_accept(a: Accepting) -> Outcome:
    if not a.site.settings.url_redirect_auto_complete:
        return Outcome(a.fulfillment)
    done = await transitions.complete(a.conn, a.fulfillment, now=a.now)
    assert done is not None  # created a moment ago in this transaction
    return Outcome(done)
