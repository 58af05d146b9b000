"""The ceiling of an ASGI collector: uvicorn, set up as Plowline's collector is, serving an app that does nothing.

`bench/collector_vs_nginx.py --bare-asgi` runs it beside Plowline and nginx. The app reads the
request body and answers the collector's own responses (GET: the 43-byte pixel with the `sp`
cookie and no-cache headers; POST: `ok`), but stores nothing, parses nothing and keeps no metrics.
What it reaches is the most any collector running its request path in Python on this ASGI server
can reach on this machine: the server's own per-request cost, with no work done.

    .venv/bin/python bench/bare_asgi.py PORT WORKERS
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from plowline.collector.responses import IMAGE_GIF, NO_CACHE, PIXEL, TEXT_PLAIN
from plowline.collector.server import UVICORN_OPTIONS

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_COOKIE = (
    b"set-cookie",
    b"sp=6f7c8f1e-2d1b-4b3a-9a4e-0f1e2d3c4b5a; Expires=Mon, 29 Nov 2027 12:00:00 GMT; Path=/; "
    b"SameSite=None; Secure; HttpOnly",
)


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the whole body, as the collector does
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/__bench_drain":  # the load script's end-of-run requests: a 404, as the collector
        headers, body, status = [TEXT_PLAIN], b"", 404
    elif scope["method"] == "POST":
        headers, body, status = [TEXT_PLAIN, _COOKIE, NO_CACHE], b"ok", 200
    else:
        headers, body, status = [IMAGE_GIF, _COOKIE, NO_CACHE], PIXEL, 200
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        "bare_asgi:app",
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=int(sys.argv[2]),
        **UVICORN_OPTIONS,
    )
