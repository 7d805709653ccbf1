"""One ``offerd serve`` per OFFERD_HOME: the home's embedded PostgreSQL belongs to the server
that started it, and a second server on the same home would join it with its own settings
(another admin token, SMTP, destinations policy) and run its worker on the first one's jobs.

The lock is an ``flock`` on ``OFFERD_HOME/serve.lock`` held for the life of the process: the
kernel drops it when the process ends, however it ends (SIGKILL included), so a lock is never
stale. The file says who holds it (pid, address) for the refusal message.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO

# The open lock file, kept for the life of the process (closing it would release the lock).
_HELD: list[IO[str]] = []


class HomeInUse(Exception):
    """Another live ``offerd serve`` holds this OFFERD_HOME."""


def lock_home(home: Path, *, host: str, port: int) -> None:
    """Take the home's serve lock or raise ``HomeInUse`` naming the holder."""
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "serve.lock"
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _read(handle.read())
        handle.close()
        raise HomeInUse(
            f"{home} is already served by offerd (pid {holder.get('pid', '?')}, "
            f"http://{holder.get('host', '?')}:{holder.get('port', '?')}); stop it first "
            "or give this server another OFFERD_HOME"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": host, "port": port}))
    handle.flush()
    _HELD.append(handle)


def _read(text: str) -> dict[str, object]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
