"""The fake's HTTP face: a raw ASGI app (served by uvicorn) speaking Stripe's v1 wire protocol.

Order of checks, as Stripe documents them: authentication; faults that happen before the API
does anything (429, 503); parameter validation (refusals here are never stored against an
idempotency key); the idempotency lookup (replay, or ``idempotency_error`` for other params);
then the endpoint runs and its answer, errors included, is stored against the key. Only POST
takes part: Stripe ignores ``Idempotency-Key`` on GET and DELETE ("idempotent by definition").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from tests.fakes.stripefake.faults import Fault, Faults
from tests.fakes.stripefake.objects import new_id
from tests.fakes.stripefake.params import StripeError, check, parse_form
from tests.fakes.stripefake.routes import ROUTES
from tests.fakes.stripefake.store import API_VERSION, Ctx, Store

Handler = Callable[[Store, dict[str, Any], list[str], Ctx], dict[str, Any]]


@dataclass(frozen=True)
class Logged:
    """One request as the fake saw it (``fake.requests``)."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int  # 0: the connection was cut
    replayed: bool
    request_id: str


@dataclass
class Stored:
    fingerprint: tuple[Any, ...]
    status: int
    body: dict[str, Any]
    request_id: str


class StripeApp:
    def __init__(self, store: Store, faults: Faults, api_key: str) -> None:
        self.store, self.faults = store, faults
        self.api_keys = {api_key}  # several keys of one account (a rolled key's old and new)
        self.key_valid = True
        self.idempotency: dict[tuple[str, str], Stored] = {}
        self.running: set[tuple[str, str]] = set()
        self.requests: list[Logged] = []
        self.routes: list[tuple[str, re.Pattern[str], dict[str, Any], Handler]] = [
            (m, re.compile(f"^{p}$"), schema, h) for m, p, schema, h in ROUTES
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "run with lifespan='off'"
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # the client went away before its body arrived whole (a process killed while
                # sending): like any HTTP server, the request is never processed
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        raw = (
            (scope["query_string"] or b"").decode()
            if method in ("GET", "DELETE")
            else body.decode()
        )
        key = headers.get("idempotency-key") if method == "POST" else None
        running = (headers.get("authorization", ""), key) if key else None
        with self.store.lock:  # a second request with a key whose first is still running: 409
            busy = running in self.running
            if running and not busy:
                self.running.add(running)
        try:
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            status, payload, extra, drop = self.handle(method, scope["path"], raw, headers, busy)
        finally:
            if running and not busy:
                with self.store.lock:
                    self.running.discard(running)
        if drop and _cut(send):
            await asyncio.sleep(0)
            return
        data = orjson.dumps(payload)
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        out += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    def handle(
        self, method: str, path: str, raw: str, headers: dict[str, str], busy: bool = False
    ) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        request_id = new_id("req")
        key = headers.get("idempotency-key") if method == "POST" else None
        extra = {
            "Request-Id": request_id,
            "Stripe-Version": headers.get("stripe-version", API_VERSION),
        }
        if key:
            extra["Idempotency-Key"] = key
        params: dict[str, Any] = {}
        replayed, drop = False, False
        with self.store.lock:
            try:
                caller = self._authenticate(headers.get("authorization", ""))
                if busy:
                    raise StripeError(
                        409,
                        "There is currently another in-progress request using this Stripe "
                        f"Idempotency Key ({key}). Please try again later.",
                        type_="idempotency_error",
                        stored=False,
                    )
                early = self.faults.take(method, during=False)
                if early is not None:
                    status, payload = self._fault(early, extra, request_id)
                else:
                    route, args, params = self._route(method, path, raw)
                    status, payload, replayed, drop = self._run(
                        route, args, params, (caller, key), method, path, raw, request_id, extra
                    )
            except StripeError as err:
                status, payload = err.status, err.body(request_id)
            self.requests.append(
                Logged(method, path, params, key, 0 if drop else status, replayed, request_id)
            )
        return status, payload, extra, drop

    def _authenticate(self, header: str) -> str:
        given = header.removeprefix("Bearer ").strip()
        if header.startswith("Bearer ") and self.key_valid and given in self.api_keys:
            return given
        masked = f"{given[:8]}{'*' * max(len(given) - 12, 0)}{given[-4:]}" if given else ""
        message = (
            f"Invalid API Key provided: {masked}"
            if given
            else "You did not provide an API key. Provide it in the Authorization header."
        )
        raise StripeError(401, message, stored=False)

    def _route(self, method: str, path: str, raw: str) -> tuple[Any, list[str], dict[str, Any]]:
        for m, pattern, schema, handler in self.routes:
            match = pattern.match(path)
            if match and m == method:
                params = check(parse_form(raw), schema)
                return handler, [unquote(g) for g in match.groups()], params
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            stored=False,
        )

    def _run(
        self,
        handler: Handler,
        args: list[str],
        params: dict[str, Any],
        scoped: tuple[str, str | None],
        method: str,
        path: str,
        raw: str,
        request_id: str,
        extra: dict[str, str],
    ) -> tuple[int, dict[str, Any], bool, bool]:
        fingerprint = (method, path, tuple(sorted(parse_qsl(raw, keep_blank_values=True))))
        key = scoped[1]  # idempotency keys are per API key, as Stripe keeps them
        if key is not None:
            stored = self.idempotency.get((scoped[0], key))
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you meant "
                        "to execute a different request.",
                        type_="idempotency_error",
                        stored=False,
                    )
                extra.update({"Idempotent-Replayed": "true", "Original-Request": stored.request_id})
                return stored.status, stored.body, True, False
        fault = self.faults.take(method, during=True)
        ctx = Ctx(request_id, key)
        if fault is not None and fault.kind == "status" and not fault.apply:
            status, payload = self._fault(fault, extra, request_id)
        else:
            try:
                status, payload = 200, handler(self.store, params, args, ctx)
            except StripeError as err:
                if not err.stored:
                    raise
                status, payload = err.status, err.body(request_id)
            if fault is not None and fault.kind == "status":
                status, payload = self._fault(fault, extra, request_id)
        if key is not None:
            self.idempotency[(scoped[0], key)] = Stored(fingerprint, status, payload, request_id)
        return status, payload, False, fault is not None and fault.kind == "drop"

    def _fault(
        self, fault: Fault, extra: dict[str, str], request_id: str
    ) -> tuple[int, dict[str, Any]]:
        if fault.retry_after is not None:
            extra["Retry-After"] = str(fault.retry_after)
        if fault.should_retry is not None:
            extra["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        if fault.status == 429:
            err = StripeError(
                429,
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )
        else:
            err = StripeError(fault.status, "An unknown error occurred", type_="api_error")
        return fault.status, err.body(request_id)


def _cut(send: Any) -> bool:
    """Drop the connection without a byte of answer: abort uvicorn's transport (the ASGI app can
    reach it only through the ``send`` it was given: a bound method of the request cycle)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.abort()
    cycle.disconnected = True  # type: ignore[union-attr]  # uvicorn then writes no 500 of its own
    return True
