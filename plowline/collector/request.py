"""Reading an ASGI HTTP request the way Snowplow's collector records it (spec/protocol.md 3.2, 3.6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from plowline.collector.cookies import clean_cookie_header

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_ANONYMOUS_DROPPED = frozenset({b"x-forwarded-for", b"x-real-ip", b"cookie"})
_canonical_names: dict[bytes, str] = {}


def canonical_header_name(raw: bytes) -> str:
    """`user-agent` → `User-Agent`. The server lower-cases names; Enrich matches them case-insensitively."""
    name = _canonical_names.get(raw)
    if name is None:
        name = "-".join(part.capitalize() for part in raw.decode("latin-1").split("-"))
        if len(_canonical_names) < 4096:
            _canonical_names[raw] = name
    return name


def decode_text(raw: bytes) -> str:
    """Header values are usually ASCII; UTF-8 where valid, else Latin-1 so no byte is lost."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_querystring(raw: bytes) -> str:
    """The raw querystring as text. Bytes that are not UTF-8 are kept, percent-encoded."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _percent_encode_invalid(raw)


def _percent_encode_invalid(raw: bytes) -> str:
    out: list[str] = []
    index = 0
    while index < len(raw):
        try:
            out.append(raw[index:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            out.append(raw[index : index + exc.start].decode("utf-8"))
            out.extend(f"%{byte:02X}" for byte in raw[index + exc.start : index + exc.end])
            index += exc.end
    return "".join(out)


@dataclass(slots=True)
class TrackingRequest:
    """The parts of an HTTP request a raw record is built from."""

    method: str
    path: str
    querystring: str
    headers: list[str]
    cookie_headers: list[str]
    user_agent: str | None
    referer: str | None
    origin: str | None
    content_type: str | None
    host: str | None
    forwarded_for: str | None
    anonymous: bool
    peer_ip: str
    header_bytes: int


def read_request(scope: MutableMapping[str, Any]) -> TrackingRequest:
    """Collect headers in order, as `Name: value` strings, with Snowplow's cookie and anonymity rules."""
    recorded: list[str] = []
    cookies: list[str] = []
    user_agent = referer = origin = content_type = host = forwarded = None
    anonymous = False
    header_bytes = 0
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    for raw_name, raw_value in raw_headers:
        header_bytes += len(raw_name) + len(raw_value) + 4
        value = decode_text(raw_value)
        if raw_name == b"cookie":
            cookies.append(value)
        elif raw_name == b"user-agent":
            user_agent = value
        elif raw_name == b"referer":
            referer = value
        elif raw_name == b"origin":
            origin = origin if origin is not None else value
        elif raw_name == b"content-type":
            content_type = value.lower()
        elif raw_name == b"host":
            host = value
        elif raw_name == b"x-forwarded-for":
            forwarded = forwarded if forwarded is not None else value
        elif raw_name == b"sp-anonymous":
            anonymous = True
    for raw_name, raw_value in raw_headers:
        if anonymous and raw_name in _ANONYMOUS_DROPPED:
            continue
        if raw_name == b"cookie":
            cleaned = clean_cookie_header(decode_text(raw_value))
            if cleaned is not None:
                recorded.append("Cookie: " + cleaned)
            continue
        recorded.append(canonical_header_name(raw_name) + ": " + decode_text(raw_value))
    if content_type is not None:
        recorded.append(content_type)
    client = scope.get("client")
    return TrackingRequest(
        method=scope["method"],
        path=scope["path"],
        querystring=decode_querystring(scope.get("query_string", b"")),
        headers=recorded,
        cookie_headers=cookies,
        user_agent=user_agent,
        referer=referer,
        origin=origin,
        content_type=content_type,
        host=host,
        forwarded_for=None if anonymous else forwarded,
        anonymous=anonymous,
        peer_ip=client[0] if client else "unknown",
        header_bytes=header_bytes,
    )


class BodyTooLarge(Exception):
    """The body passed the drop limit; the request is refused with 413 and nothing is stored."""


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
