"""A client that dies while sending its request body (kill -9 mid-write): the fakes, like any
HTTP server, never process a request whose body did not arrive whole. (The Stripe fake once applied it with
whatever part had arrived, which no real server does, and which made a retry under the same
idempotency key look like a key reused with other parameters.)"""

from __future__ import annotations

import base64
import socket
import time
from urllib.parse import urlsplit

from tests.fakes.chargebee_api import FakeChargebee, chargebee_fake  # noqa: F401
from tests.fakes.stripe_api import FakeStripe, fake_stripe  # noqa: F401


def send_half(
    url: str, path: str, headers: dict[str, str], body: bytes, *, whole: bool = False
) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + (body if whole else body[: len(body) // 2]))
        answer = sock.recv(65536) if whole else b""
    time.sleep(0.3)  # let the server see the connection close
    return answer


def test_stripe_does_not_apply_a_half_sent_update(fake_stripe: FakeStripe) -> None:  # noqa: F811
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    fake_stripe.seed_coupon(id="SAVE10", percent_off=10)
    sub = fake_stripe.seed_subscription(fake_stripe.seed_customer(), "price_basic")
    headers = {
        "Authorization": f"Bearer {fake_stripe.api_key}",
        "Idempotency-Key": "k1",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    send_half(
        fake_stripe.url, f"/v1/subscriptions/{sub['id']}", headers, b"discounts[0][coupon]=SAVE10"
    )
    assert fake_stripe.history(sub["id"]) == []
    # the same key, sent whole, is a first use
    client = fake_stripe.client()
    client.v1.subscriptions.update(
        sub["id"], {"discounts": [{"coupon": "SAVE10"}]}, {"idempotency_key": "k1"}
    )
    assert len(fake_stripe.history(sub["id"])) == 1


# its first half alone is a valid request too: processed half, it would apply
BODY = b"coupon_ids[0]=TEN&end_of_term=false"


def test_chargebee_does_not_apply_a_half_sent_update(chargebee_fake: FakeChargebee) -> None:  # noqa: F811
    chargebee_fake.seed_item_price("basic-USD-monthly", 2000)
    chargebee_fake.seed_coupon("TEN", discount_percentage=10.0)
    chargebee_fake.seed_subscription("sub_1", items="basic-USD-monthly")
    auth = base64.b64encode(f"{chargebee_fake.api_key}:".encode()).decode()
    headers = {
        "Authorization": f"Basic {auth}",
        "chargebee-idempotency-key": "k1",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    send_half(
        chargebee_fake.api_base,
        "/api/v2/subscriptions/sub_1/update_for_items",
        headers,
        BODY,
    )
    assert chargebee_fake.history("sub_1") == []
    # the same request sent whole is applied (so the half one was refused for being half)
    answer = send_half(
        chargebee_fake.api_base,
        "/api/v2/subscriptions/sub_1/update_for_items",
        headers,
        BODY,
        whole=True,
    )
    assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n")[0], answer[:300]
    assert len(chargebee_fake.history("sub_1")) == 1
