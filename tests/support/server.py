"""offerd served over real HTTP (uvicorn in a thread of the test process) for clients that need
a socket: the official SDKs, the browser, concurrency tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from offerd.app import create_app
from offerd.edge.deps import Services
from tests.support.app import MovableClock, test_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    base_url: str
    port: int
    clock: MovableClock
    app: Any

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc


@contextmanager
def live_server(db_url: str, *, run_worker: bool = False, **overrides: Any) -> Iterator[LiveServer]:
    port = free_port()
    clock = MovableClock()
    settings = test_settings(db_url, port=port, **overrides)
    app = create_app(settings, clock=clock, run_worker=run_worker)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", port, clock, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
