"""Outbound HTTP to destinations merchants configure, made safe.

- https only, unless the site is in test mode or private destinations are allowed (development);
- the host is resolved here and every address checked: private, loopback, link-local, multicast
  and reserved addresses are refused unless ``OFFERD_ALLOW_PRIVATE_DESTINATIONS=1``; the request
  then goes to the checked address (so a second DNS answer cannot point it elsewhere), with the
  original Host header and TLS server name;
- redirects are not followed (a 3xx is a failure, as at Chargebee);
- at most ``max_bytes`` of the response are read.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from offerd.common.addresses import blocked

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 1000


class DestinationRefused(Exception):
    """The URL may not be called (scheme or address); retrying will not help."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _literal(host: str) -> list[str] | None:
    """An IP address written as the host needs no resolver (nor its thread pool)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


async def resolve(url: str, *, allow_http: bool, allow_private: bool) -> tuple[str, str, int]:
    """Check ``url`` and pick the address to connect to: (host, address, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DestinationRefused(f"not an http(s) URL: {url}")
    if parts.scheme == "http" and not (allow_http or allow_private):
        raise DestinationRefused("plain http destinations need the site's test_mode")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    addresses = _literal(host)
    if addresses is None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if allow_private or not blocked(ipaddress.ip_address(address.split("%", 1)[0])):
            return host, address, port
    raise DestinationRefused(
        f"{host} resolves only to private, loopback or link-local addresses "
        "(set OFFERD_ALLOW_PRIVATE_DESTINATIONS=1 to allow them)"
    )


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    allow_http: bool,
    allow_private: bool,
    auth: tuple[str, str] | None = None,
    timeout: float = 15.0,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> HttpResult:
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        host, address, port = await resolve(url, allow_http=allow_http, allow_private=allow_private)
    except OSError as exc:
        return HttpResult(None, elapsed(), error=str(exc))
    parts = urlsplit(url)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    request = client.build_request(
        "POST",
        target,
        content=content,
        headers={**headers, "host": host_header},
        timeout=timeout,
        extensions={"sni_hostname": host} if parts.scheme == "https" else {},
    )
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.headers["authorization"] = f"Basic {token}"
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            body = b""
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) >= max_bytes:
                    break
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        return HttpResult(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
    excerpt = body[:max_bytes].decode("utf-8", "replace")[:EXCERPT_CHARS]
    error = None
    if not 200 <= response.status_code < 300:
        error = f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            error += " (redirects are not followed)"
    return HttpResult(
        response.status_code,
        elapsed(),
        error=error,
        excerpt=excerpt,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )
