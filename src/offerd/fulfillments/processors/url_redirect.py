"""url_redirect: the merchant fulfils behind its redirect URL and reports back with an update.
With the site setting ``url_redirect_auto_complete`` it is complete at once instead."""

from __future__ import annotations

from offerd.fulfillments import transitions
from offerd.fulfillments.processors import Accepting, Outcome, Processor
from offerd.sites.models import Site


class UrlRedirect(Processor):
    """No job: the merchant reports back (or the site completes these at once)."""

    def follows_up(self, site: Site) -> bool:
        return site.settings.url_redirect_auto_complete

    async def on_accept(self, accepting: Accepting) -> Outcome:
        if not accepting.site.settings.url_redirect_auto_complete:
            return Outcome(accepting.fulfillment)
        done = await transitions.complete(accepting.conn, accepting.fulfillment, now=accepting.now)
        assert done is not None  # created a moment ago in this transaction
        return Outcome(done)


PROCESSOR = UrlRedirect()
