"""Browser fixtures: Playwright driving Debian's Chromium (``apt-get install chromium``), never a
browser Playwright downloads itself.

Without ``/usr/bin/chromium`` the browser tests skip with a message saying how to get it, or fail
when ``OFFERD_REQUIRE_BROWSER=1`` (CI sets it, so a missing browser can't pass silently).
Each test gets its own Chromium with a fresh user-data dir, so nothing leaks between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Playwright, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("OFFERD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (OFFERD_REQUIRE_BROWSER=1, so this is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def chromium() -> Path:
    """Checked before anything else is set up (no database is started for a skipped test)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(
            f"{CHROMIUM} is missing: install Debian's Chromium with `apt-get install -y chromium` "
            "(do not use `playwright install`)"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def playwright(chromium: Path) -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - it is a dev dependency
        _unavailable(f"the playwright package is not importable: {exc}")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright, chromium: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh Chromium profile (its own user-data dir) at desktop size."""
    context = playwright.chromium.launch_persistent_context(
        user_data_dir=tmp_path / "chromium-profile",
        executable_path=str(chromium),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=DESKTOP,
        locale="en-US",
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where the screenshots go: ``OFFERD_SCREENSHOT_DIR`` if set (for a human to look at), else
    the test's own temporary directory."""
    target = Path(os.environ.get("OFFERD_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target
