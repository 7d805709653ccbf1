"""The fake's HTTP side: a real server on 127.0.0.1 the unmodified ``chargebee`` SDK talks to.

Why ``http.server`` and not an ASGI app: "apply the change, then cut the connection without
answering" needs the socket, which ASGI hides (uvicorn answers 500 when an app sends nothing).

A request goes: recorded → injected latency → injected failure (nothing processed) → HTTP Basic
auth (the site's API key as user name) → the site in the Host (``{site}.localhost`` as the SDK
builds it, or a bare 127.0.0.1/localhost when offerd points the SDK at ``api_base``) → route.
Mutating POSTs honour ``chargebee-idempotency-key`` as Chargebee documents: the same key and the
same parameters within 30 minutes (the fake's clock) replay the stored response with
``chargebee-idempotency-replayed: true``; the same key with other parameters is refused (422
``unable_to_process_request``); only successful responses are stored. Estimates ignore the key
(Chargebee: "Estimate APIs do not support idempotency").
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.chargebee import estimate, forms
from tests.fakes.chargebee.errors import CbError, not_found, transient, wrong
from tests.fakes.chargebee.store import Obj, Store

IDEMPOTENCY_WINDOW = 30 * 60
SUBSCRIPTION_OPS = (
    "update_for_items",
    "pause",
    "resume",
    "change_term_end",
    "cancel_for_items",
    "remove_scheduled_cancellation",
)
_FILTER_OPS = ("is", "is_not", "in", "not_in", "after", "before", "starts_with")


@dataclass(frozen=True)
class Call:
    """One request as it reached the fake, and what it was answered."""

    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None
    status: int = 0  # 0: the connection was cut without an answer
    replayed: bool = False


@dataclass
class Reply:
    status: int
    body: Obj
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class _Stored:
    fingerprint: tuple[Any, ...]
    status: int
    body: Obj
    at: int


class Faults:
    """What the test asked to go wrong next (read and consumed under the fake's lock)."""

    def __init__(self) -> None:
        self.failures: list[tuple[int, int | None, str | None]] = []
        self.drops = 0
        self.latency = 0.0

    def take_failure(self, method: str) -> tuple[int, int | None] | None:
        for n, (status, retry_after, only) in enumerate(self.failures):
            if only is None or only == method:
                del self.failures[n]
                return status, retry_after
        return None


class Server:
    """Routing, auth, idempotency and faults over a ``Store``; ``FakeChargebee`` wraps it."""

    def __init__(self, store: Store, api_key: str) -> None:
        self.store = store
        self.api_key: str | None = api_key
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self.idempotency: dict[str, _Stored] = {}
        self.list_cache: dict[str, dict[Any, Any]] = {}

    # --- one request ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)) if body else {}
        params = {**query, **form}
        key = headers.get("chargebee-idempotency-key")
        with self.lock:
            latency = self.faults.latency
            failure = self.faults.take_failure(method)
        if latency:
            time.sleep(latency)
        try:
            if failure is not None:
                raise transient(*failure)
            self._authenticate(headers)
            self._check_site(headers)
            reply = self._route(method, split.path, params, key)
        except CbError as error:
            reply = Reply(error.status, error.body(), error.headers)
        with self.lock:
            self.calls.append(
                Call(
                    method,
                    split.path,
                    params,
                    key,
                    0 if reply.drop else reply.status,
                    "chargebee-idempotency-replayed" in reply.headers,
                )
            )
        return reply

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            user = base64.b64decode(encoded, validate=True).decode("latin1").partition(":")[0]
        except (binascii.Error, ValueError):
            user = ""
        with self.lock:
            valid = self.api_key is not None and scheme.lower() == "basic" and user == self.api_key
        if not valid:
            raise CbError(
                401, "api_authentication_failed", "Sorry, authentication failed. Invalid api key"
            )

    def _check_site(self, headers: dict[str, str]) -> None:
        name = headers.get("host", "").rsplit(":", 1)[0].lower()
        if name not in ("127.0.0.1", "localhost", "") and name.split(".")[0] != self.store.site:
            raise CbError(404, "site_not_found", f"Sorry, we couldn't find the site {name}")

    def _route(self, method: str, path: str, params: dict[str, str], key: str | None) -> Reply:
        if not path.startswith("/api/v2/"):
            raise not_found("Resource", path)
        parts = [unquote(p) for p in path[len("/api/v2/") :].strip("/").split("/")]
        store = self.store
        if method == "GET":
            getters: dict[str, tuple[dict[str, Obj], Callable[[Obj], Obj], str]] = {
                "subscriptions": (store.subscriptions, store.wrapped, "Subscription"),
                "customers": (store.customers, lambda o: {"customer": o}, "Customer"),
                "coupons": (store.coupons, lambda o: {"coupon": o}, "Coupon"),
                "item_prices": (store.item_prices, lambda o: {"item_price": o}, "Item price"),
            }
            if parts[0] in getters and len(parts) <= 2:
                objects, wrap, what = getters[parts[0]]
                with self.lock:
                    if len(parts) == 1:
                        cache = self.list_cache.setdefault(parts[0], {})
                        return Reply(
                            200,
                            listing(list(objects.values()), params, wrap, cache, store.generation),
                        )
                    if parts[1] not in objects:
                        raise not_found(what, parts[1])
                    return Reply(200, json.loads(json.dumps(wrap(objects[parts[1]]))))
        elif method == "POST":
            if parts == ["estimates", "update_subscription_for_items"]:
                with self.lock:
                    return Reply(200, estimate.update_subscription_for_items(store, params))
            if len(parts) == 3 and parts[0] == "subscriptions" and parts[2] in SUBSCRIPTION_OPS:
                return self._mutate(path, parts[1], parts[2], params, key)
        known = parts[0] in ("subscriptions", "customers", "coupons", "item_prices", "estimates")
        if known and method not in ("GET", "POST"):
            raise CbError(405, "http_method_not_supported", f"{method} is not supported")
        raise not_found("Resource", path)

    def _mutate(
        self, path: str, sub_id: str, op: str, params: dict[str, str], key: str | None
    ) -> Reply:
        if key is not None and len(key) > 100:
            raise CbError(
                400,
                "invalid_request",
                "chargebee-idempotency-key : should not exceed 100 characters",
            )
        fingerprint = ("POST", path, tuple(sorted(params.items())))
        with self.lock:
            now = self.store.clock.now
            if key is not None:
                stored = self.idempotency.get(key)
                if stored is not None and now - stored.at >= IDEMPOTENCY_WINDOW:
                    del self.idempotency[key]
                    stored = None
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        raise CbError(
                            422,
                            "unable_to_process_request",
                            f"The idempotency key {key} was used with other parameters",
                        )
                    return Reply(
                        stored.status,
                        json.loads(json.dumps(stored.body)),
                        {"chargebee-idempotency-replayed": "true"},
                    )
            result = getattr(self.store, op)(sub_id, params, key)
            body = json.loads(json.dumps(result))
            if key is not None:
                self.idempotency[key] = _Stored(fingerprint, 200, body, now)
            drop = self.faults.drops > 0
            if drop:
                self.faults.drops -= 1
        return Reply(200, body, drop=drop)


def listing(
    objects: list[Obj],
    params: dict[str, str],
    wrap: Callable[[Obj], Obj],
    cache: dict[Any, Any] | None = None,
    generation: Any = None,
) -> Obj:
    """A list page: ``limit`` (1–100, default 10), ``offset`` = a previous ``next_offset``,
    ``field[op]`` filters, ``sort_by[asc|desc]`` (default newest ``created_at`` first).

    The offset names the last row seen (Chargebee's is opaque too), so pages stay stable while
    rows are added. The sorted rows are cached per ``generation`` so a 10,000-row sync pages fast.
    """
    limit = forms.integer(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise wrong("limit", "should be between 1 and 100")
    sort_field, descending = "created_at", True
    for direction in ("asc", "desc"):
        value = forms.text(params, f"sort_by[{direction}]")
        if value is not None:
            if value not in ("created_at", "updated_at"):
                raise wrong(f"sort_by[{direction}]", f"cannot sort by {value}")
            sort_field, descending = value, direction == "desc"
    checks = _filters(params)
    cache_key = (id(objects) if generation is None else generation, sort_field)
    rows = cache.get(cache_key) if cache is not None else None
    if rows is None:
        rows = sorted(((int(o.get(sort_field) or 0), str(o["id"])), o) for o in objects)
        if cache is not None:
            cache.clear()
            cache[cache_key] = rows
    order = list(reversed(rows)) if descending else rows
    start = 0
    offset = forms.text(params, "offset")
    if offset is not None:
        try:
            mark_at, mark_id = json.loads(offset)
            mark = (int(mark_at), str(mark_id))
        except (ValueError, TypeError):
            raise wrong("offset", "invalid offset") from None
        keys = [k for k, _ in rows]
        if descending:
            start = len(rows) - bisect.bisect_left(keys, mark)
        else:
            start = bisect.bisect_right(keys, mark)
    page: list[tuple[tuple[int, str], Obj]] = []
    more = False
    for row in order[start:]:
        if all(check(row[1]) for check in checks):
            if len(page) == limit:
                more = True
                break
            page.append(row)
    body: Obj = {"list": [json.loads(json.dumps(wrap(o))) for _, o in page]}
    if more:
        last = page[-1][0]
        body["next_offset"] = json.dumps([str(last[0]), last[1]])
    return body


def _filters(params: dict[str, str]) -> list[Callable[[Obj], bool]]:
    """``status[is]=active``, ``id[in]=[…]``, ``updated_at[after]=t``… as predicates."""
    checks: list[Callable[[Obj], bool]] = []
    for name, value in params.items():
        attr, _, rest = name.partition("[")
        op = rest.rstrip("]")
        if attr != "sort_by" and op in _FILTER_OPS:
            checks.append(_predicate(attr, op, value, name))
    return checks


def _predicate(attr: str, op: str, value: str, name: str) -> Callable[[Obj], bool]:
    if op in ("after", "before"):
        bound = forms.integer({name: value}, name) or 0

        def timed(obj: Obj) -> bool:
            have = obj.get(attr)
            return have is not None and (have > bound if op == "after" else have < bound)

        return timed
    values = forms.string_list(value, name) if op in ("in", "not_in") else [value]
    wanted = {v.lower() for v in values}

    def compared(obj: Obj) -> bool:
        have = str(obj.get(attr)).lower()
        if op == "starts_with":
            return have.startswith(value.lower())
        return (have in wanted) == (op in ("is", "in"))

    return compared


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 30

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # the client went away before its body arrived whole (a process killed while
            # sending): like any HTTP server, the request is never processed
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.owner.handle(self.command, self.path, headers, body)
        if reply.drop:
            self.close_connection = True  # applied and stored, but the client never hears of it
            return
        payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json;charset=utf-8")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, owner: Server) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def serve(owner: Server) -> tuple[_HTTPServer, threading.Thread]:
    httpd = _HTTPServer(owner)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return httpd, thread
