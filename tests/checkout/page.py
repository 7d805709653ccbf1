"""Read a hosted checkout page's HTML the way a reader of the page would: headings, the
"What changes" table, buttons, links, alerts (stdlib parser, no regexes over markup)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Button:
    text: str
    name: str | None
    value: str | None


@dataclass
class Link:
    text: str
    href: str


@dataclass
class Page:
    lang: str | None = None
    title: str = ""
    h1: list[str] = field(default_factory=list)
    caption: str = ""
    rows: list[list[str]] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    hidden_inputs: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def token(self) -> str:
        return self.hidden_inputs["token"]

    def button(self, value: str) -> Button | None:
        return next((b for b in self.buttons if b.value == value), None)


class _Reader(HTMLParser):
    # elements whose text we collect, and the tag that closes each capture
    _CAPTURE = {"title", "h1", "caption", "button", "a", "th", "td"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[tuple[str, dict[str, str | None], list[str]]] = []
        self._row: list[str] | None = None
        self._in_tbody = False
        self._alert_depth: list[int] = []
        self._alert_text: list[list[str]] = []
        self._depth = 0
        self._in_style = False
        self._all: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.page.lang = a.get("lang")
        if tag in ("style", "script"):
            self._in_style = True
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.page.hidden_inputs[a["name"] or ""] = a.get("value") or ""
        if tag == "tbody":
            self._in_tbody = True
        if tag == "tr" and self._in_tbody:
            self._row = []
        if tag in ("input", "meta", "br", "link", "img"):
            return  # void elements have no end tag
        self._depth += 1
        if a.get("role") == "alert":
            self._alert_depth.append(self._depth)
            self._alert_text.append([])
        if tag in self._CAPTURE:
            self._stack.append((tag, a, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._in_style = False
        if tag == "tbody":
            self._in_tbody = False
        if tag == "tr" and self._row is not None:
            self.page.rows.append(self._row)
            self._row = None
        if self._stack and self._stack[-1][0] == tag:
            name, attrs, parts = self._stack.pop()
            text = " ".join("".join(parts).split())
            if self._stack:  # nested capture (a span in a th): the outer one sees the text too
                self._stack[-1][2].append("".join(parts))
            if name == "title":
                self.page.title = text
            elif name == "h1":
                self.page.h1.append(text)
            elif name == "caption":
                self.page.caption = text
            elif name == "button":
                self.page.buttons.append(Button(text, attrs.get("name"), attrs.get("value")))
            elif name == "a":
                self.page.links.append(Link(text, attrs.get("href") or ""))
            elif name in ("th", "td") and self._row is not None:
                self._row.append(text)
        if self._alert_depth and self._alert_depth[-1] == self._depth:
            self._alert_depth.pop()
            self.page.alerts.append(" ".join("".join(self._alert_text.pop()).split()))
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        self._all.append(data)
        if self._stack:
            self._stack[-1][2].append(data)
        for parts in self._alert_text:
            parts.append(data)


def read(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    reader.page.text = " ".join("".join(reader._all).split())
    return reader.page
