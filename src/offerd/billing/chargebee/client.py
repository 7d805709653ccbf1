"""The ``chargebee`` SDK's client for one site, and its errors as offerd's provider errors.

- The SDK's own retries stay off (its default): a retry is a new generation of the change,
  recorded before it is sent (``billing.remote``); chargebee 3.29 would also not honour
  ``Retry-After`` (it reads the wrong attribute), so offerd reads ``err.http_headers`` itself.
- ``api_base`` (a proxy, a test server): the SDK builds ``{site}.chargebee.com`` hosts, so offerd
  sets the client's endpoint to ``{api_base}/api/v2`` itself. The SDK forces https unless its
  class attribute ``verify_ca_certs`` is off (then it verifies with httpx's default trust store
  instead of the SDK's bundled one): it is turned off when an ``api_base`` is configured, and the
  scheme is the ``api_base``'s.
- The async client (``use_async_client``): a call never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from chargebee import Chargebee
from chargebee.api_error import APIError

from offerd.billing.provider import (
    PermanentProviderError,
    ProviderError,
    ProviderUnauthorized,
    TransientProviderError,
)

T = TypeVar("T")


class NotFoundAtChargebee(PermanentProviderError):  # noqa: N818 - reads as the outcome
    """404 ``resource_not_found``: the object does not exist (the mirror drops it)."""


CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 20


def build(config: Mapping[str, Any]) -> Chargebee:
    client = Chargebee(
        api_key=config["api_key"],
        site=config["site"],
        use_async_client=True,
        connection_time_out=CONNECT_TIMEOUT_SECONDS,
        read_time_out=READ_TIMEOUT_SECONDS,
    )
    base = config.get("api_base")
    if base:
        Chargebee.verify_ca_certs = False
        client.env.protocol = urlsplit(base).scheme or "https"
        client.env.api_endpoint = base.rstrip("/") + "/api/" + client.env.API_VERSION
    return client


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value)
    return None


def translate(exc: BaseException) -> ProviderError:
    """A Chargebee SDK (or transport) error as offerd's permanent / transient provider error."""
    if isinstance(exc, APIError):
        status = int(exc.http_status_code or 0)
        message = str(exc) or exc.api_error_code or "Chargebee refused the request"
        request_id = _header(exc.http_headers, "x-request-id")
        if status == 401:
            return ProviderUnauthorized(
                f"Chargebee rejected the API key: {message}", request_id=request_id
            )
        # 409 is Chargebee's invalid_state_for_request: the subscription's answer, permanent
        if status == 429 or status >= 500 or status == 0:
            raw = _header(exc.http_headers, "retry-after")
            try:
                retry_after = float(raw) if raw is not None else None
            except ValueError:
                retry_after = None
            return TransientProviderError(
                f"Chargebee: {message}", request_id=request_id, retry_after=retry_after
            )
        if status == 404:
            return NotFoundAtChargebee(message, request_id=request_id)
        return PermanentProviderError(message, request_id=request_id)
    if isinstance(exc, httpx.HTTPError):
        return TransientProviderError(f"Chargebee could not be reached: {exc!r}")
    # the SDK raises a bare Exception for an answer that is not Chargebee's JSON (a proxy's 502)
    return TransientProviderError(f"Chargebee: {exc}")


async def call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (APIError, httpx.HTTPError) as exc:
        raise translate(exc) from exc
    except Exception as exc:  # noqa: BLE001 - the SDK's plain Exception for a non-JSON answer
        if isinstance(exc, ProviderError):
            raise
        raise translate(exc) from exc
