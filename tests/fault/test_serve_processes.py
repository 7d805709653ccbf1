"""``offerd serve`` and the embedded PostgreSQL under OFFERD_HOME, as real processes:

- stopped with SIGTERM (systemd, Docker, Kubernetes) or SIGINT (Ctrl-C), the last offerd process
  stops PostgreSQL: no postgres process of that home is left;
- after a SIGKILL (PostgreSQL left running, orphaned), the next ``offerd serve`` on the home
  starts, serves, and stops PostgreSQL when it is stopped in turn;
- a second ``offerd serve`` on a home already served refuses in one line naming the first.

Every wait here is a hang guard (initdb and migrations run on a shared 2-core machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.fault.harness import timeout_mark
from tests.support.cli import OFFERD
from tests.support.server import free_port

pytestmark = [pytest.mark.fault, timeout_mark(400)]

START_TIMEOUT = 180.0
EXIT_TIMEOUT = 90.0


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"offerd serve exited\n{self.tail()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"offerd serve never got ready\n{self.tail()}"
            time.sleep(0.3)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"offerd serve did not exit after {sig.name}\n{self.tail()}")


class Homes:
    """``offerd serve`` processes on one OFFERD_HOME; none (nor its PostgreSQL) outlives the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.started: list[Served] = []

    def serve(self) -> Served:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFERD_")}
        env.update(
            OFFERD_HOME=str(self.home),
            OFFERD_PORT=str(port),
            OFFERD_LOG_LEVEL="warning",
            OFFERD_ADMIN_TOKEN="t",
            NO_COLOR="1",
        )
        log = self.tmp / f"serve-{len(self.started)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(OFFERD), "serve", "--no-worker"],
                cwd=self.tmp,  # no stray .env from the checkout
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        served = Served(proc, port, log)
        self.started.append(served)
        return served

    def postgres(self) -> list[psutil.Process]:
        """The PostgreSQL processes of this home (they run with the data directory as cwd)."""
        pgdata = str((self.home / "pgdata").resolve())
        found = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if not (proc.info["name"] or "").startswith("postgres"):
                    continue
                if pgdata in (proc.info["cmdline"] or []) or proc.cwd() == pgdata:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def wait_no_postgres(self) -> list[psutil.Process]:
        deadline = time.monotonic() + 30
        while (left := self.postgres()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def cleanup(self) -> None:
        for served in self.started:
            if served.proc.poll() is None:
                served.proc.kill()
                served.proc.wait(30)
        for proc in self.postgres():  # left by a failed test (or by the code before the fix)
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[Homes]:
    h = Homes(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_serve_stops_the_embedded_postgres(homes: Homes, sig: signal.Signals) -> None:
    served = homes.serve()
    served.wait_ready()
    assert homes.postgres(), "the check below would see nothing: no postgres found while serving"
    assert served.stop(sig) == 0, served.tail()
    assert homes.wait_no_postgres() == [], f"PostgreSQL left running after {sig.name}"


def test_after_a_sigkill_the_next_serve_starts_and_then_stops_postgres(homes: Homes) -> None:
    first = homes.serve()
    first.wait_ready()
    first.proc.kill()
    first.proc.wait(EXIT_TIMEOUT)
    assert homes.postgres(), "PostgreSQL outlives a SIGKILLed serve (pgserver daemonizes it)"

    second = homes.serve()
    second.wait_ready()
    r = httpx.get(
        f"http://127.0.0.1:{second.port}/admin/v1/sites/acme",
        headers={"authorization": "Bearer t"},
    )
    assert r.status_code == 404, r.text  # the database answers, the schema is there
    assert second.stop(signal.SIGTERM) == 0, second.tail()
    assert homes.wait_no_postgres() == [], "the killed serve's stale handle kept PostgreSQL up"


def test_a_second_serve_on_a_served_home_refuses_naming_the_first(homes: Homes) -> None:
    first = homes.serve()
    first.wait_ready()
    second = homes.serve()
    try:
        code = second.proc.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the second serve runs beside the first\n{second.tail()}")
    assert code != 0
    lines = [line for line in second.tail().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"pid {first.proc.pid}" in lines[0] and str(first.port) in lines[0], lines[0]
    assert "Traceback" not in second.tail()
    # The first is untouched and still serving; stopping it still stops PostgreSQL.
    assert httpx.get(f"http://127.0.0.1:{first.port}/readyz", timeout=10).status_code == 200
    assert first.stop(signal.SIGTERM) == 0, first.tail()
    assert homes.wait_no_postgres() == []
