"""Fixtures that point the official, unmodified Chargebee SDKs at a live offerd.

Both SDKs always build ``{site}.grow.{domain}`` hosts, so offerd is served with
``BASE_DOMAIN=localhost`` (the Host header must then name the API key's site, as on Chargebee) and
``*.localhost`` has to reach 127.0.0.1:

* Python: ``socket.getaddrinfo`` is wrapped in the test process for the test's duration.
* Node: its fetch asks the system resolver, so the session adds the names to ``/etc/hosts`` (and
  removes them at the end). Where Node, ``npm ci`` or ``/etc/hosts`` is not available the Node tests
  skip, or fail when ``OFFERD_REQUIRE_NODE=1`` (CI sets it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
from chargebee import Chargebee

from tests.compat.helpers import NODE_DIR, NodeSdk, Site, run_process
from tests.support.server import LiveServer, live_server
from tests.support.sync import Admin, seed

GROW_DOMAIN = "localhost"
# Every site a compat test talks to through an SDK: /etc/hosts needs a line for each.
SITES = ("acme", "other")

HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# added by offerd tests/compat"
LOCK_DIR = Path(tempfile.gettempdir())


# --- the server --------------------------------------------------------------------------------


@pytest.fixture
def grow_server(db_url: str) -> Iterator[LiveServer]:
    """offerd on a real socket (no worker), taking the site from ``{site}.grow.localhost``."""
    with live_server(db_url, base_domain=GROW_DOMAIN) as server:
        yield server


@pytest.fixture
def acme(grow_server: LiveServer) -> Site:
    """Site ``acme`` with tests.support.sync.seed's catalog (offer ``stay``, cus_1 / sub_1)."""
    keys = seed(grow_server.base_url)
    return Site("acme", keys["full_access"], keys["publishable"])


@pytest.fixture
def admin(grow_server: LiveServer) -> Admin:
    return Admin(grow_server.base_url)


# --- the Python SDK ----------------------------------------------------------------------------


@pytest.fixture
def localhost_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*.localhost`` resolves to 127.0.0.1 in this process (restored after the test)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def chargebee_client(
    grow_server: LiveServer, localhost_dns: None, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Chargebee]:
    """A factory of official Python SDK clients for this test's offerd.

    ``Chargebee(protocol="http")`` only sets an instance attribute, while ``http_request.py`` reads
    the class attribute ``verify_ca_certs`` to pick the scheme: it is switched off for the test.
    """
    monkeypatch.setattr(Chargebee, "verify_ca_certs", False)

    def make(api_key: str, site: str = "acme") -> Chargebee:
        return Chargebee(
            api_key=api_key,
            site=site,
            chargebee_domain=f"{GROW_DOMAIN}:{grow_server.port}",
            protocol="http",
        )

    return make


# --- the Node SDK ------------------------------------------------------------------------------


def node_required() -> bool:
    return os.environ.get("OFFERD_REQUIRE_NODE", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    if node_required():
        pytest.fail(f"{reason} (OFFERD_REQUIRE_NODE is set, so this is a failure)", pytrace=False)
    pytest.skip(f"Node SDK tests skipped: {reason} (set OFFERD_REQUIRE_NODE=1 to fail instead)")


@contextmanager
def file_lock(name: str) -> Iterator[int]:
    """An exclusive flock on a file in the temp dir, seen by every pytest session here."""
    fd = os.open(LOCK_DIR / name, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def grow_host_names(sites: Sequence[str]) -> list[str]:
    return [
        name for site in sites for name in (f"{site}.grow.{GROW_DOMAIN}", f"{site}.{GROW_DOMAIN}")
    ]


def _missing_host_names(names: Sequence[str]) -> list[str]:
    present: set[str] = set()
    for line in HOSTS_FILE.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "127.0.0.1":
            present.update(f.lower() for f in fields[1:])
    return [n for n in names if n not in present]


def _add_host_names(names: Sequence[str]) -> None:
    text = HOSTS_FILE.read_text()
    newline = "" if not text or text.endswith("\n") else "\n"
    with HOSTS_FILE.open("a") as f:  # appending never shows a reader a half-written file
        f.write(f"{newline}127.0.0.1 {' '.join(names)} {HOSTS_MARK}\n")


def _remove_marked_host_lines() -> None:
    lines = HOSTS_FILE.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.rstrip().endswith(HOSTS_MARK)]
    if len(kept) == len(lines):
        return
    text = "".join(kept)
    tmp = HOSTS_FILE.with_name(f".hosts.offerd-compat-{os.getpid()}")
    try:
        tmp.write_text(text)
        shutil.copymode(HOSTS_FILE, tmp)
        os.replace(tmp, HOSTS_FILE)  # atomic where /etc/hosts is not a bind mount
    except OSError:
        tmp.unlink(missing_ok=True)
        HOSTS_FILE.write_text(text)


@contextmanager
def hosts_entries(names: Sequence[str]) -> Iterator[None]:
    """Make ``names`` resolve to 127.0.0.1 through /etc/hosts for the duration.

    Other pytest sessions on this machine may rely on the same lines at the same time: each holds
    a shared "users" lock meanwhile, and the last one out (the one that gets that lock exclusively
    without waiting) removes the lines this fixture added. Adding and removing happen under a
    short "mutex" lock, so a removal never slips in between another session's check and its
    shared lock. Lines that were there before are left alone.
    """
    users = os.open(LOCK_DIR / "offerd-compat-hosts.users", os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        with file_lock("offerd-compat-hosts.mutex"):
            missing = _missing_host_names(names)
            if missing:
                _add_host_names(missing)  # OSError when /etc/hosts is not writable
            fcntl.flock(users, fcntl.LOCK_SH)
        try:
            yield
        finally:
            with file_lock("offerd-compat-hosts.mutex"):
                fcntl.flock(users, fcntl.LOCK_UN)
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # another session still relies on the lines: it removes them
                else:
                    _remove_marked_host_lines()
    finally:
        os.close(users)


def _installed_sdk_version() -> str | None:
    installed = NODE_DIR / "node_modules" / "chargebee" / "package.json"
    if not installed.exists():
        return None
    version: str = json.loads(installed.read_text())["version"]
    return version


def pinned_sdk_version() -> str:
    version: str = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["chargebee"]
    return version


@pytest.fixture(scope="session")
def node_sdk() -> Iterator[NodeSdk]:
    """Node, the pinned chargebee npm package (``npm ci`` when missing) and ``/etc/hosts``."""
    node = shutil.which("node")
    if node is None:
        unavailable("`node` is not on PATH")
    version = run_process([node, "--version"])
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if version.returncode != 0 or not major.isdigit() or int(major) < 18:
        unavailable(f"Node >= 18 is needed, `node --version` says {version.stdout.strip()!r}")

    pinned = pinned_sdk_version()
    with file_lock("offerd-compat-npm.lock"):
        if _installed_sdk_version() != pinned:
            npm = shutil.which("npm")
            if npm is None:
                unavailable("`npm` is not on PATH (needed for `npm ci` in tests/compat/node)")
            ci = run_process([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=600)
            if ci.returncode != 0:
                unavailable(f"`npm ci` in {NODE_DIR} failed:\n{ci.stdout}\n{ci.stderr}")
        installed = _installed_sdk_version()
        if installed != pinned:
            unavailable(f"chargebee {pinned} is pinned but {installed} is installed")

    names = grow_host_names(SITES)
    with ExitStack() as stack:
        try:
            stack.enter_context(hosts_entries(names))
        except OSError as exc:
            unavailable(f"cannot add `127.0.0.1 {' '.join(names)}` to {HOSTS_FILE}: {exc}")
        # The names must now resolve for Node itself (nsswitch, resolver): check, don't assume.
        lookup = run_process(
            [
                node,
                "-e",
                "const dns = require('node:dns');"
                "Promise.all(process.argv.slice(1).map((n) => dns.promises.lookup(n, {family: 4})))"
                ".then((r) => console.log(JSON.stringify(r.map((a) => a.address))))"
                ".catch((e) => { console.error(String(e)); process.exit(1); });",
                *names,
            ]
        )
        if lookup.returncode != 0 or set(json.loads(lookup.stdout or "[]")) != {"127.0.0.1"}:
            unavailable(
                f"Node does not resolve {' '.join(names)} to 127.0.0.1 "
                f"(stdout {lookup.stdout.strip()!r}, stderr {lookup.stderr.strip()!r})"
            )
        yield NodeSdk(node)
