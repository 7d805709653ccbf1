"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

    with MailSink() as sink:                   # or the ``smtp`` fixture (see below)
        async with running_app(db_url, smtp_host=sink.host, smtp_port=sink.port) as app:
            ... make offerd send mail ...
        (mail,) = sink.messages
        assert mail.rcpt_tos == ["success@merchant.example"]
        assert "Mark fulfilled" in mail.html
        complete, fail = mail.links

The server runs in its own thread and event loop (aiosmtpd's ``Controller``), on a socket bound
before it starts (no port races). A message is stored before the server answers ``250`` to its
``DATA``, so once offerd's SMTP client has returned the message is in ``sink.messages``.

``sink.respond_with("451 4.3.0 try again later", "250 OK")`` scripts the answers to the next
``DATA`` commands (a non-2xx answer is recorded in ``sink.refused``, not in ``sink.messages``);
afterwards every message is accepted again.

Register the ``smtp`` fixture by importing it into a ``conftest.py``
(``from tests.support.smtp import smtp  # noqa: F401``) or define an equivalent in a test module.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailSink", "ReceivedMail", "smtp"]

_URL = re.compile(r"https?://[^\s<>\"']+")


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((" ".join("".join(self._text).split()), self._href))
            self._href = None


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    def __getitem__(self, header: str) -> Any:
        """A header of the message (``mail["Subject"]``), decoded."""
        return self.message[header]

    def _part(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content: str = part.get_content()
        return content

    @property
    def text(self) -> str:
        """The text/plain part ('' if there is none)."""
        return self._part("plain") or ""

    @property
    def html(self) -> str:
        """The text/html part ('' if there is none)."""
        return self._part("html") or ""

    @property
    def anchors(self) -> list[tuple[str, str]]:
        """(link text, href) of every ``<a>`` in the HTML part, in order."""
        parser = _Anchors()
        parser.feed(self.html)
        return parser.anchors

    @property
    def text_urls(self) -> list[str]:
        """Every http(s) URL in the text part, in order."""
        return _URL.findall(self.text)

    def link(self, text: str) -> str:
        """The href of the single HTML anchor whose text is ``text``."""
        found = [href for label, href in self.anchors if label == text]
        assert len(found) == 1, f"expected one link {text!r}, found {self.anchors!r}"
        return found[0]


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=message_from_bytes(raw, policy=policy.default),
        )
        return self.sink._record(mail)


class _BoundController(Controller):
    """aiosmtpd's threaded controller serving on a socket bound up front."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port)
        self._sock = sock

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class MailSink:
    """An SMTP server on 127.0.0.1 that stores the messages it is sent."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.refused: list[tuple[str, ReceivedMail]] = []
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._controller: _BoundController | None = None

    def start(self) -> MailSink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port: int = sock.getsockname()[1]
        self._controller = _BoundController(_Handler(self), sock)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settings(self, sender: str = "offers@acme.example") -> dict[str, Any]:
        """Setting overrides pointing offerd at this server (for ``running_app``)."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_from": sender}

    def respond_with(self, *replies: str) -> MailSink:
        """Answer the next DATA commands with these SMTP replies (e.g. ``"451 4.3.0 later"``)."""
        with self._lock:
            self._script = list(replies)
        return self

    def _record(self, mail: ReceivedMail) -> str:
        with self._lock:
            reply = self._script.pop(0) if self._script else "250 OK"
            if reply.startswith("2"):
                self.messages.append(mail)
            else:
                self.refused.append((reply, mail))
        return reply

    def to(self, address: str) -> list[ReceivedMail]:
        """The accepted messages with ``address`` among the envelope recipients."""
        with self._lock:
            return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture
def smtp() -> Iterator[MailSink]:
    """A running SMTP sink for one test, stopped afterwards."""
    with MailSink() as sink:
        yield sink
