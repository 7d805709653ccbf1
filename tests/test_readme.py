"""Every shell block of the README runs as written against a live offerd.

A newcomer copies these blocks; each one must exit 0 and print no Chargebee error. The
placeholders the README names (``$OFFERD_ADMIN_TOKEN``, ``$OFFERD_URL``, ``$K``, ``$PO``, ``$OF``,
``$DL``) come from the environment, made here the way the README says to get them. A block that
cannot run in a test says why in a ``<!-- not-run: reason -->`` comment right before it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import ADMIN_TOKEN
from tests.support.server import LiveServer

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^( *)```(\w*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(.+?)\s*-->\s*$")


@dataclass
class Block:
    line: int
    text: str
    not_run: str | None


def shell_blocks(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None or match.group(2) == "":
            i += 1
            continue
        indent, lang = len(match.group(1)), match.group(2)
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i][indent:])
            i += 1
        i += 1
        if lang in ("sh", "bash", "shell", "console"):
            marker = _NOT_RUN.match(lines[start - 2]) if start >= 2 else None
            blocks.append(Block(start, "\n".join(body), marker.group(1) if marker else None))
    return blocks


def test_the_readme_blocks_are_found_and_exclusions_name_a_reason() -> None:
    blocks = shell_blocks(README.read_text())
    assert len([b for b in blocks if b.not_run is None]) >= 5
    skipped = [b for b in blocks if b.not_run is not None]
    assert skipped and all(b.not_run for b in skipped)
    assert all("./scripts/" in b.text for b in skipped), "only installing blocks are excluded"


class Placeholders:
    """The values a reader gets by following the README, made on first use."""

    def __init__(self, live: LiveServer) -> None:
        self.http = httpx.Client(base_url=live.base_url, timeout=30)
        self.admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        self.values: dict[str, str] = {}
        self.makers: dict[str, Callable[[], str]] = {
            "K": self._key,
            "PO": self._po,
            "OF": self._redirect_fulfillment,
            "DL": self._delivery,
        }

    def env_for(self, text: str) -> dict[str, str]:
        for name, make in self.makers.items():
            if name not in self.values and re.search(rf"\${name}\b", text):
                self.values[name] = make()
        return self.values

    def _ok(self, r: httpx.Response) -> Any:
        assert r.status_code < 300, r.text
        return r.json()

    def _key(self) -> str:
        r = self.http.post(
            "/admin/v1/sites/acme/api_keys",
            json={"kind": "full_access", "name": "t"},
            headers=self.admin,
        )
        return str(self._ok(r)["key"])

    def _offer(self) -> str:
        key = self.values.setdefault("K", self._key())
        body = {"customer_id": "cus_1", "subscription_id": "sub_1", "custom": {"viewCount": 6}}
        r = self.http.post("/api/v2/personalized_offers", json=body, auth=(key, ""))
        offers = self._ok(r)["personalized_offers"]
        assert offers, r.text
        return str(offers[0]["id"])

    def _po(self) -> str:
        return self._offer()

    def _accept(self, option: str, headers: dict[str, str] | None = None) -> str:
        r = self.http.post(
            "/api/v2/offer_fulfillments",
            json={"personalized_offer_id": self._offer(), "option_id": option},
            auth=(self.values["K"], ""),
            headers=headers or {},
        )
        return str(self._ok(r)["offer_fulfillment"]["id"])

    def _redirect_fulfillment(self) -> str:
        r = self.http.get("/admin/v1/sites/acme/offers/extend", headers=self.admin)
        offer = self._ok(r)
        options = [o for o in offer["options"] if o["id"] != "later"]
        options.append(
            {
                "id": "later",
                "label": "Remind me later",
                "processing_type": "url_redirect",
                "redirect_url": "https://acme.example/later?c={customer_id}",
            }
        )
        fields = ("name", "status", "priority", "eligibility", "content")
        body = {**{f: offer[f] for f in fields}, "options": options}
        self._ok(self.http.put("/admin/v1/sites/acme/offers/extend", json=body, headers=self.admin))
        return self._accept("later")

    def _delivery(self) -> str:
        # An acceptance whose deliveries are suppressed: recorded as skipped, so it can be retried.
        self._accept("extend", {"chargebee-event-actions": "all-disabled"})
        r = self.http.get("/admin/v1/sites/acme/deliveries", headers=self.admin)
        rows = self._ok(r)["deliveries"]
        assert rows, r.text
        return str(rows[0]["id"])


def test_every_readme_shell_block_runs(live: LiveServer, db_url: str, tmp_path: Path) -> None:
    blocks = [b for b in shell_blocks(README.read_text()) if b.not_run is None]
    made = Placeholders(live)
    base = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OFFERD_ADMIN_TOKEN": ADMIN_TOKEN,
        "OFFERD_URL": live.base_url,
        "OFFERD_DATABASE_URL": db_url,
        "OFFERD_LOG_LEVEL": "warning",
        "COLUMNS": "200",
        # what the first block defines, for a reader who runs the later ones in the same shell
        "A": f"authorization: Bearer {ADMIN_TOKEN}",
        "J": "content-type: application/json",
        "B": live.base_url,
    }
    for block in blocks:
        env = {**base, **made.env_for(block.text)}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.text],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        where = f"README.md line {block.line}:\n{block.text}\n--- out:\n{done.stdout}{done.stderr}"
        assert done.returncode == 0, where
        assert '"api_error_code"' not in done.stdout, where
        assert "Traceback" not in done.stderr, where


@pytest.mark.parametrize(
    "markdown, runnable",
    [
        ("```sh\necho hi\n```\n", 1),
        ("<!-- not-run: installs -->\n```sh\n./scripts/demo\n```\n", 0),
        ("```json\n{}\n```\n  ```sh\n  echo indented\n  ```\n", 1),
    ],
)
def test_block_extraction(markdown: str, runnable: int) -> None:
    assert len([b for b in shell_blocks(markdown) if b.not_run is None]) == runnable
