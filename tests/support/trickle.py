"""An HTTP server that answers a byte at a time, forever: the destination that held a worker slot
for days when only each read had a timeout.

    with Trickle("127.0.0.2") as slow:        # any 127.0.0.0/8 address is loopback on Linux
        ... point a webhook at slow.url + "/hook" ...
        slow.accepted      # connections it has taken
        slow.most_at_once  # the most connections it had open at the same time

Each request gets a status line and headers promising a large body, then one byte every
``every`` seconds until the client hangs up or the server stops. A thread per connection, so it
works whatever loop or process the client runs in.
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class Trickle:
    def __init__(self, host: str = "127.0.0.1", *, every: float = 0.2) -> None:
        self.host = host
        self.every = every
        self.accepted = 0
        self.open = 0
        self.most_at_once = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None, "not running"
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Trickle:
        self._sock = socket.create_server((self.host, 0))
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self.open += 1
            self.most_at_once = max(self.most_at_once, self.open)
        try:
            conn.settimeout(5)
            self._read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
            while not self._stop.wait(self.every):
                conn.sendall(b".")
        except OSError:
            pass  # the client gave up: what a deadline is for
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    @staticmethod
    def _read_request(conn: Any) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed before the request was sent")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
