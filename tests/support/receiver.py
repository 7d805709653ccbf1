"""A real HTTP server on 127.0.0.1 that records every request and answers from a script.

For testing offerd's outbound channels (processing webhooks, notification webhooks, Slack,
Segment) end to end: offerd makes a real TCP connection and a real HTTP request, the test then
inspects exactly what arrived.

    with Receiver() as receiver:              # or the ``receiver`` fixture (see below)
        receiver.respond_with(500, 500, 200)  # first two requests fail, then succeed
        ... point offerd at receiver.url + "/hook" and run the worker ...
        (first, second, third) = receiver.requests
        assert first.method == "POST" and first.path == "/hook"
        assert first.headers["content-type"] == "application/json"
        event = first.json()

Replies are consumed in order, one per request; once the script is used up every further request
gets ``receiver.default`` (``200`` with body ``ok`` unless changed). A reply is an ``int`` (the
status), a ``Reply(status, headers, body)``, a ``(status, headers, body)`` tuple, or a callable
taking the ``Recorded`` request and returning any of these. ``body`` may be ``bytes``, ``str``, or
a ``dict``/``list`` (sent as JSON with ``content-type: application/json``).

A request is recorded *before* its response is written, so by the time offerd's HTTP client has
the response the test can see the request: no waiting or polling is needed.

The server runs in a background thread (``http.server``), so it works whether the code under test
runs on the test's event loop (the in-process app) or in another thread or process. It speaks
HTTP/1.1 with keep-alive, reads ``content-length`` and ``chunked`` bodies, and ignores clients
that hang up early (e.g. offerd stopping reading a large response).

The ``receiver`` fixture below gives a fresh running receiver per test; register it by importing
it into a ``conftest.py`` (``from tests.support.receiver import receiver  # noqa: F401``) or define
an equivalent fixture in the test module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["Recorded", "Receiver", "Reply", "receiver"]


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    method: str
    target: str  # the request target as sent: path and query
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    header_items: list[tuple[str, str]]  # as sent, in order, names as sent
    body: bytes
    client: tuple[str, int]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers with."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] = b""

    def encoded(self) -> tuple[dict[str, str], bytes]:
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self.body
        if isinstance(body, dict | list):
            headers.setdefault("content-type", "application/json")
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            headers.setdefault("content-type", "text/plain; charset=utf-8")
            body = body.encode()
        return headers, body


ReplySpec = int | Reply | tuple[int, dict[str, str], Any] | Callable[[Recorded], Any]


def _as_reply(spec: Any, request: Recorded) -> Reply:
    if callable(spec) and not isinstance(spec, Reply):
        spec = spec(request)
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, int):
        return Reply(spec)
    if isinstance(spec, tuple):
        return Reply(*spec)
    raise TypeError(f"not a reply: {spec!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # an idle keep-alive connection is dropped after this

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        items = list(self.headers.items())
        headers: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = Recorded(
            method=self.command,
            target=self.path,
            headers=headers,
            header_items=items,
            body=body,
            client=self.client_address[:2],
        )
        reply = self.server.owner._record(request)
        reply_headers, reply_body = reply.encoded()
        try:
            self.send_response(reply.status)
            for name, value in reply_headers.items():
                if name != "content-length":
                    self.send_header(name, value)
            self.send_header("content-length", str(len(reply_body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply_body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: that's its right

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections from a pooled client must not block close
    allow_reuse_address = True

    def __init__(self, owner: Receiver) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-request is not the receiver's problem


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and replies from a script."""

    def __init__(self, default: ReplySpec = Reply(200, body=b"ok")) -> None:
        self.default: ReplySpec = default
        self.requests: list[Recorded] = []
        self._script: list[ReplySpec] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Receiver:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where it is -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the receiver is not running"
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); append any path."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str = "/") -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    # --- the script ------------------------------------------------------------------------

    def respond_with(self, *replies: ReplySpec) -> Receiver:
        """Answer the next requests with these, in order (replacing any unused script)."""
        with self._lock:
            self._script = list(replies)
        return self

    def always(self, reply: ReplySpec) -> Receiver:
        """Answer every request not covered by the script with ``reply``."""
        with self._lock:
            self.default = reply
        return self

    def clear(self) -> None:
        """Forget the recorded requests (the script stays)."""
        with self._lock:
            self.requests.clear()

    def _record(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            spec = self._script.pop(0) if self._script else self.default
        return _as_reply(spec, request)

    # --- reading what arrived ----------------------------------------------------------------

    def received(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """The recorded requests, optionally only those with this method and/or path."""
        with self._lock:
            found = list(self.requests)
        return [
            r
            for r in found
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        ]

    def only(self, method: str | None = None, path: str | None = None) -> Recorded:
        """The single matching request; fails the test if there are none or several."""
        found = self.received(method, path)
        assert len(found) == 1, f"expected one request, got {len(found)}: {found!r}"
        return found[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver for one test, stopped afterwards."""
    with Receiver() as running:
        yield running
