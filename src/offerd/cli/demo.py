"""The demo site ``offerd demo`` serves: a small catalog and ledger, an offer with one option of
each processing type, notification channels, fresh API keys, and a copy-paste curl walk-through.

In the demo, what offerd sends (webhooks, Slack messages, emails) lands in an in-memory inbox the
demo server itself serves at ``/demo/inbox``, so the whole flow can be watched on one machine.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import deque
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import TypeAdapter
from starlette.responses import Response

from offerd.billing import service as billing
from offerd.billing.models import CouponIn, CustomerIn, PlanIn, SubscriptionIn
from offerd.common.clock import SystemClock
from offerd.common.ids import new_id
from offerd.common.secrets import box_for
from offerd.console import service as console_users
from offerd.db import Database, transaction
from offerd.edge.auth import hash_key, new_key
from offerd.notifications.models import ChannelIn
from offerd.notifications.service import save_channel
from offerd.offers.models import OfferIn
from offerd.offers.service import save_offer
from offerd.settings import Settings
from offerd.sites import service as sites
from offerd.sites.models import KeyKind, SiteIn

SITE = "demo"
CONSOLE_USER = "demo@offerd.example"
CONSOLE_PASSWORD_FILE = "demo-console-password"
KEY_KINDS: tuple[KeyKind, ...] = ("full_access", "publishable")


def demo_offer(base_url: str) -> dict[str, Any]:
    return {
        "name": "Stay with us",
        "status": "active",
        "priority": 10,
        "eligibility": "subscription.status == 'active'",
        "content": {
            "title": "Before you go…",
            "description": "Take 20% off for 3 months, move to Pro, talk to us, let us send "
            "you a gift, or have us call you.",
        },
        "options": [
            {
                "id": "discount",
                "label": "Take 20% off for 3 months",
                "processing_type": "billing_update",
                "billing_action": {"type": "apply_coupon", "coupon_id": "SAVE20"},
            },
            {
                "id": "upgrade",
                "label": "Move to Pro",
                "processing_type": "checkout",
                "processing_layout": "full_page",
                "billing_action": {"type": "change_plan", "plan_id": "pro-monthly"},
                "redirect_url": f"{base_url}/demo/inbox",
            },
            {
                "id": "talk",
                "label": "Talk to us",
                "processing_type": "url_redirect",
                "redirect_url": "https://example.com/save?customer={customer_id}"
                "&fulfillment={fulfillment_id}",
            },
            {
                "id": "gift",
                "label": "Send me a gift",
                "processing_type": "webhook",
                "webhook_url": f"{base_url}/demo/inbox/gift-webhook",
            },
            {
                "id": "call",
                "label": "Call me",
                "processing_type": "email",
                "email_to": ["success@example.com"],
            },
        ],
    }


def demo_channels(base_url: str) -> dict[str, ChannelIn]:
    every: list[Any] = [
        "offer_accepted",
        "offer_fulfillment_completed",
        "offer_fulfillment_failed",
        "offer_viewed",
        "offer_dismissed",
    ]
    adapter: TypeAdapter[ChannelIn] = TypeAdapter(ChannelIn)
    return {
        "ops-webhook": adapter.validate_python(
            {"type": "webhook", "url": f"{base_url}/demo/inbox/webhook", "event_types": every}
        ),
        "ops-slack": adapter.validate_python(
            {
                "type": "slack",
                "webhook_url": f"{base_url}/demo/inbox/slack",
                "event_types": ["offer_fulfillment_completed", "offer_fulfillment_failed"],
            }
        ),
        "ops-email": adapter.validate_python(
            {"type": "email", "to": ["team@demo.example"], "event_types": ["offer_accepted"]}
        ),
    }


TOKEN_FILE = "demo-admin-token"


def port_free(host: str, port: int) -> bool:
    """Whether ``offerd demo`` can listen there: checked before seeding, so a second demo on a
    taken port changes nothing and says so, instead of dying after its walk-through."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError:
        return False
    return True


def admin_token(home: Path) -> str:
    """The demo's admin token, kept under ``OFFERD_HOME`` (mode 0600) so that the token a reader
    copied from the last run keeps working after a restart."""
    return _kept_secret(home / TOKEN_FILE, "adm_")


def console_password(home: Path) -> str:
    """The demo console user's password, kept like the admin token."""
    return _kept_secret(home / CONSOLE_PASSWORD_FILE, "")


def _kept_secret(path: Path, prefix: str) -> str:
    home = path.parent
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    home.mkdir(parents=True, exist_ok=True)
    token = prefix + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


async def seed(url: str, settings: Settings, *, reset: bool = False) -> dict[str, str]:
    """Create or refresh the demo site (``reset``: delete it and what it owns first); return
    fresh keys (the old ones keep working unless reset)."""
    clock = SystemClock()
    now = clock.now()
    db = Database(url, min_size=1, max_size=2)
    await db.open()
    try:
        async with db.connection() as conn, transaction(conn):
            if reset:
                await sites.delete(conn, SITE)
            await sites.save(
                conn,
                SITE,
                SiteIn.model_validate(
                    {"name": "Demo SaaS", "brand": {"id": "demo-brand", "name": "Demo SaaS"}}
                ),
                now,
            )
            for plan_id, plan in {
                "basic-monthly": {
                    "name": "Basic",
                    "price": 1500,
                    "currency": "USD",
                    "period_unit": "month",
                },
                "pro-monthly": {
                    "name": "Pro",
                    "price": 4900,
                    "currency": "USD",
                    "period_unit": "month",
                },
            }.items():
                await billing.save_plan(conn, SITE, plan_id, PlanIn.model_validate(plan), now)
            coupon = CouponIn.model_validate(
                {
                    "name": "20% off for 3 months",
                    "discount_type": "percentage",
                    "discount_percentage": 20,
                    "duration_type": "limited_period",
                    "duration_months": 3,
                }
            )
            await billing.save_coupon(conn, SITE, "SAVE20", coupon, now)
            customer = CustomerIn(email="ada@example.com", first_name="Ada", last_name="Lovelace")
            await billing.save_customer(conn, SITE, "cus_demo", customer, now)
            term_start = int(now.timestamp())
            sub = SubscriptionIn(
                customer_id="cus_demo",
                plan_id="basic-monthly",
                status="active",
                current_term_start=term_start,
                current_term_end=term_start + 30 * 86400,
            )
            await billing.save_subscription(conn, SITE, "sub_demo", sub, now)
            await save_offer(
                conn,
                site_id=SITE,
                offer_id="stay",
                offer=OfferIn.model_validate(demo_offer(settings.base_url)),
                now=now,
            )
            for channel_id, channel in demo_channels(settings.base_url).items():
                await save_channel(
                    conn,
                    site_id=SITE,
                    channel_id=channel_id,
                    channel=channel,
                    now=now,
                    box=box_for(settings),
                )
            keys: dict[str, str] = {}
            for kind in KEY_KINDS:
                secret = new_key(kind)
                await sites.add_key(
                    conn,
                    key_id=new_id("key"),
                    site_id=SITE,
                    kind=kind,
                    name=f"demo {kind}",
                    key_hash=hash_key(secret),
                    hint=secret[-4:],
                    now=now,
                )
                keys[kind] = secret
        async with db.connection() as conn:
            await console_users.add_user(
                conn,
                email=CONSOLE_USER,
                password=console_password(settings.home),
                role="editor",
                now=now,
            )
        return keys
    finally:
        await db.close()


def walkthrough(settings: Settings, keys: dict[str, str]) -> str:
    base = settings.base_url
    full = keys["full_access"]
    admin = settings.admin_token.get_secret_value() if settings.admin_token else "(unset)"
    # A fresh key per POST step and per run: a key reused with other parameters is a 422, and a
    # replay of the last run's key would answer with the last run's ids.
    run = secrets.token_hex(4)
    return f"""
offerd demo — site "{SITE}" at {base}

  full_access key : {full}
  publishable key : {keys["publishable"]}
  admin token     : {admin}
  API docs        : {base}/docs
  console         : {base}/console  (sign in as {CONSOLE_USER}, password {console_password(settings.home)})

1. Ask for the best offer for the demo subscriber:

  curl -s -u {full}: {base}/api/v2/personalized_offers \\
    -H 'content-type: application/json' \\
    -d '{{"customer_id": "cus_demo", "subscription_id": "sub_demo"}}'

   (or as a form: -d customer_id=cus_demo -d subscription_id=sub_demo -d 'request_context[locale]=en-US')

2. Say it was viewed (use the personalized offer id from step 1 as PO):

  curl -s -u {full}: {base}/api/v2/offer_events \\
    -H 'chargebee-idempotency-key: demo-{run}-view' \\
    -d personalized_offer_id=$PO -d type=viewed

3. Accept the 20%-off option (billing_update; the worker applies the coupon):

  curl -s -u {full}: {base}/api/v2/offer_fulfillments \\
    -H 'chargebee-idempotency-key: demo-{run}-accept' \\
    -d personalized_offer_id=$PO -d option_id=discount

4. Poll it (use the fulfillment id from step 3 as OF):

  curl -s -u {full}: {base}/api/v2/offer_fulfillments/$OF

5. See the subscription and its change log, and the event log:

  curl -s -H 'authorization: Bearer {admin}' {base}/admin/v1/sites/{SITE}/subscriptions/sub_demo
  curl -s -H 'authorization: Bearer {admin}' {base}/admin/v1/sites/{SITE}/offer_events

6. See what offerd sent (signed webhooks, Slack messages, emails with their one-time links):

  curl -s {base}/demo/inbox

Other options of the same offer: upgrade (checkout: open hosted_page.url in a browser), talk
(url_redirect: follow redirect_url, then report with POST /api/v2/offer_fulfillments/$OF
-d id=$OF -d status=completed), gift (webhook: the request lands in the inbox), call (email: the
mail, with its "Mark fulfilled" / "Mark failed" links, lands in the inbox).
"""


# --- the demo inbox -----------------------------------------------------------------------------


class Inbox:
    """The last few hundred things offerd sent, in memory (demo only)."""

    def __init__(self, size: int = 200) -> None:
        self.items: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, item: dict[str, Any]) -> None:
        self.items.appendleft({"received_at": datetime.now(UTC).isoformat(), **item})


class InboxMailer:
    """Stands in for SMTP in the demo: emails go to the inbox."""

    sender = "offerd-demo@demo.example"

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def send(self, message: EmailMessage) -> None:
        body = message.get_body(("plain",))
        self.inbox.add(
            {
                "kind": "email",
                "to": message["To"],
                "subject": message["Subject"],
                "message_id": message["Message-ID"],
                "text": body.get_content() if body is not None else "",
            }
        )


def inbox_router(inbox: Inbox) -> APIRouter:
    router = APIRouter(prefix="/demo/inbox", include_in_schema=False)

    @router.post("/{name}")
    async def receive(name: str, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")[:10_000]
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        inbox.add({"kind": name, "headers": headers, "body": body})
        return Response(b"{}", media_type="application/json")

    @router.get("")
    async def show() -> Response:
        return Response(
            orjson.dumps({"inbox": list(inbox.items)}, option=orjson.OPT_INDENT_2),
            media_type="application/json",
        )

    return router
