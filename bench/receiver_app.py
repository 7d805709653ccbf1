"""A fast webhook receiver for the notification benchmark: answers 200 at once and appends
``<unix time> <webhook-id>`` to the file in $BENCH_RECEIVED for every POST.

Run: BENCH_RECEIVED=/tmp/got.txt uvicorn bench.receiver_app:app --port 8091 --loop uvloop
"""

from __future__ import annotations

import os
import time
from typing import Any

_out = open(os.environ["BENCH_RECEIVED"], "a", buffering=1)  # noqa: SIM115 - one file for the process' life


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    _out.write(f"{time.time():.6f} {headers.get(b'webhook-id', b'-').decode()}\n")
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})
