"""Fixed responses of the collector: the pixel, robots.txt, crossdomain.xml, and ASGI send helpers."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from plowline.config import CrossDomainSettings

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Snowplow collector 3.x's 1x1 transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAPAAAP///wAAACH5BAUAAAAALAAAAAABAAEAAAICRAEAOw==")
ROBOTS_TXT = (
    b"User-agent: *\nDisallow: /\n\nUser-agent: Googlebot\nDisallow: /\n\n"
    b"User-agent: AdsBot-Google\nDisallow: /"
)
NO_CACHE = (b"cache-control", b"no-cache, no-store, must-revalidate")
TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
IMAGE_GIF = (b"content-type", b"image/gif")


def crossdomain_xml(settings: CrossDomainSettings) -> bytes:
    secure = "true" if settings.secure else "false"
    lines = [f'  <allow-access-from domain="{domain}" secure="{secure}" />' for domain in settings.domains]
    return ('<?xml version="1.0"?>\n<cross-domain-policy>\n' + "\n".join(lines) + "\n</cross-domain-policy>").encode()


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
