"""``notifications.outbound`` (checked, bounded outbound HTTP) and ``notifications.signing``
(Standard Webhooks), against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from offerd.notifications import outbound, signing
from offerd.notifications.outbound import DestinationRefused
from tests.support.receiver import Receiver, Reply


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as c:
        yield c


# --- resolve -------------------------------------------------------------------------------------

BLOCKED = [
    "http://127.0.0.1/",
    "https://127.0.0.1:8443/x",
    "http://127.1.2.3/",
    "http://localhost/",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata (shared 100.64/10)
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
    "http://[fe80::1%25eth0]/",  # with a zone
    # IPv4 inside IPv6, decoded (common.addresses)
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/",  # IPv4-translated
    "http://[64:ff9b::7f00:1]/",  # NAT64
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of the metadata address
    "http://[2002:7f00:1::]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    # not canonical literals: these go through the resolver, which reads them as 127.0.0.1
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
]


@pytest.mark.parametrize("url", BLOCKED)
async def test_private_addresses_refused(url: str) -> None:
    https = url.replace("http://", "https://", 1)
    for candidate in (url, https):
        with pytest.raises(DestinationRefused) as raised:
            await outbound.resolve(candidate, allow_http=True, allow_private=False)
        message = str(raised.value)
        assert "private" in message and "loopback" in message
        assert "OFFERD_ALLOW_PRIVATE_DESTINATIONS" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/", ("127.0.0.1", "127.0.0.1", 80)),
        ("https://127.0.0.1:8443/x", ("127.0.0.1", "127.0.0.1", 8443)),
        ("http://10.0.0.1:9000/", ("10.0.0.1", "10.0.0.1", 9000)),
        ("http://[::1]/", ("::1", "::1", 80)),
    ],
)
async def test_private_addresses_allowed_by_the_flag(
    url: str, expected: tuple[str, str, int]
) -> None:
    assert await outbound.resolve(url, allow_http=False, allow_private=True) == expected


async def test_localhost_resolves_to_loopback_when_allowed() -> None:
    host, address, port = await outbound.resolve(
        "http://localhost:8125/", allow_http=False, allow_private=True
    )
    assert (host, port) == ("localhost", 8125)
    assert address in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("url", "allow_http", "allowed"),
    [
        ("https://93.184.215.14/hook", False, True),
        ("https://93.184.215.14/hook", True, True),
        ("http://93.184.215.14/hook", False, False),
        ("http://93.184.215.14/hook", True, True),
        # no DNS is needed to refuse plain http
        ("http://merchant.example/hook", False, False),
    ],
)
async def test_plain_http_needs_allow_http(url: str, allow_http: bool, allowed: bool) -> None:
    if allowed:
        host, address, port = await outbound.resolve(
            url, allow_http=allow_http, allow_private=False
        )
        assert (host, address) == ("93.184.215.14", "93.184.215.14")
        assert port == (443 if url.startswith("https") else 80)
    else:
        with pytest.raises(DestinationRefused, match="test_mode"):
            await outbound.resolve(url, allow_http=allow_http, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["ftp://93.184.215.14/x", "file:///etc/passwd", "gopher://127.0.0.1/", "https:///nohost", "x"],
)
async def test_only_http_urls(url: str) -> None:
    for allow in (False, True):
        with pytest.raises(DestinationRefused, match="not an http"):
            await outbound.resolve(url, allow_http=allow, allow_private=allow)


# --- post ----------------------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, url: str, **kwargs: object) -> outbound.HttpResult:
    options: dict[str, object] = {
        "content": b'{"a":1}',
        "headers": {"content-type": "application/json", "x-custom": "yes"},
        "allow_http": False,
        "allow_private": True,
        **kwargs,
    }
    return await outbound.post(client, url, **options)  # type: ignore[arg-type]


async def test_post_sends_the_request_and_reads_the_answer(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.respond_with(Reply(202, {"x-reply": "1"}, {"received": True}))
    result = await post(client, receiver.url_for("/hook?q=1"), auth=("user", "pa:ss"))
    assert result.ok
    assert result.status_code == 202
    assert result.error is None
    assert result.excerpt == '{"received": true}'
    assert result.latency_ms >= 0

    request = receiver.only()
    assert request.method == "POST"
    assert request.target == "/hook?q=1"
    assert request.body == b'{"a":1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-custom"] == "yes"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"user:pa:ss").decode()


async def test_post_connects_to_the_checked_address_with_the_original_host(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    url = f"http://localhost:{receiver.port}/hook"
    _, address, _ = await outbound.resolve(url, allow_http=False, allow_private=True)
    if address != "127.0.0.1":
        pytest.skip(f"localhost resolves to {address} first here; the receiver is on 127.0.0.1")
    result = await post(client, url)
    assert result.ok, result.error
    assert receiver.only().headers["host"] == f"localhost:{receiver.port}"


async def test_post_refuses_loopback_without_the_flag(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        await post(client, receiver.url_for("/hook"), allow_http=True, allow_private=False)
    with pytest.raises(DestinationRefused, match="test_mode"):
        await post(client, receiver.url_for("/hook"), allow_http=False, allow_private=False)
    assert receiver.requests == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_a_failure_and_not_followed(
    client: httpx.AsyncClient, receiver: Receiver, status: int
) -> None:
    receiver.respond_with(Reply(status, {"location": receiver.url_for("/elsewhere")}))
    result = await post(client, receiver.url_for("/hook"))
    assert not result.ok
    assert result.status_code == status
    assert result.error is not None and "redirect" in result.error
    assert [r.path for r in receiver.requests] == ["/hook"]


@pytest.mark.parametrize(("status", "ok"), [(200, True), (299, True), (400, False), (500, False)])
async def test_success_is_2xx(
    client: httpx.AsyncClient, receiver: Receiver, status: int, ok: bool
) -> None:
    receiver.respond_with(status)
    result = await post(client, receiver.url)
    assert result.ok is ok
    assert result.status_code == status
    assert (result.error is None) is ok
    if not ok:
        assert result.error == f"HTTP {status}"


async def test_response_read_is_bounded(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.respond_with(Reply(200, {"content-type": "text/plain"}, b"x" * (1024 * 1024)))
    result = await post(client, receiver.url)
    assert result.ok
    assert result.excerpt is not None
    assert 0 < len(result.excerpt) <= outbound.EXCERPT_CHARS == 1000
    # and a tighter cap holds too
    receiver.respond_with(Reply(500, body="y" * 5000))
    result = await post(client, receiver.url, max_bytes=10)
    assert result.excerpt == "y" * 10
    assert result.status_code == 500


@pytest.mark.parametrize(("header", "expected"), [("120", 120.0), (" 7 ", 7.0), ("soon", None)])
async def test_retry_after_is_read(
    client: httpx.AsyncClient, receiver: Receiver, header: str, expected: float | None
) -> None:
    receiver.respond_with(Reply(503, {"retry-after": header}))
    result = await post(client, receiver.url)
    assert result.retry_after == expected


async def test_nobody_listening_is_an_error_not_an_exception(client: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is free now (nothing listens on it)
    result = await post(client, f"http://127.0.0.1:{port}/hook")
    assert not result.ok
    assert result.status_code is None
    assert result.error is not None and "Connect" in result.error


# --- signing -------------------------------------------------------------------------------------


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    body = b'{"id":"ev_1","object":"event"}'
    now = int(time.time())
    headers = signing.headers(secret, "ev_1", now, body)
    assert headers["webhook-id"] == "ev_1"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"] == signing.signature(secret, "ev_1", now, body)
    assert headers["webhook-signature"].startswith("v1,")

    assert Webhook(secret).verify(body, headers) == {"id": "ev_1", "object": "event"}
    for bad_body, bad_headers, bad_secret in [
        (body + b" ", headers, secret),
        (body, {**headers, "webhook-id": "ev_2"}, secret),
        (body, {**headers, "webhook-timestamp": str(now - 1)}, secret),
        (body, headers, signing.new_secret()),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(bad_secret).verify(bad_body, bad_headers)


@pytest.mark.parametrize(
    ("secret", "msg_id", "timestamp", "body", "expected"),
    [
        # the Standard Webhooks specification's own test vector: the wire format is unchanged
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        # a body with non-ASCII text is signed as its UTF-8 bytes, as sent (orjson's output)
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "ev_1",
            1614265330,
            '{"title":"Café – 50 % off 🎉"}'.encode(),
            "v1,"
            + base64.b64encode(
                hmac.new(
                    base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                    b"ev_1.1614265330." + '{"title":"Café – 50 % off 🎉"}'.encode(),
                    hashlib.sha256,
                ).digest()
            ).decode(),
        ),
    ],
)
def test_signature_is_the_libraries_and_the_wire_format(
    secret: str, msg_id: str, timestamp: int, body: bytes, expected: str
) -> None:
    assert signing.signature(secret, msg_id, timestamp, body) == expected
    when = datetime.fromtimestamp(timestamp, UTC)
    assert Webhook(secret).sign(msg_id, when, body.decode()) == expected


def test_new_secrets_differ() -> None:
    assert len({signing.new_secret() for _ in range(20)}) == 20
