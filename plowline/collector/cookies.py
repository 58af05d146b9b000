"""Identity from cookies and headers: network_userid, SP-Anonymous, do-not-track, cookie bounce."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlsplit

from plowline.config import CollectorSettings

ANONYMOUS_NETWORK_USER_ID = "00000000-0000-0000-0000-000000000000"

# RFC 6265 cookie-octet: 0x21, 0x23-0x2B, 0x2D-0x3A, 0x3C-0x5B, 0x5D-0x7E.
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")


def parse_cookie_header(values: list[str]) -> list[tuple[str, str]]:
    """All (name, value) pairs of the request's Cookie headers, in order."""
    pairs: list[tuple[str, str]] = []
    for header in values:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                pairs.append((name, value.strip().strip('"')))
    return pairs


def first_cookie(pairs: list[tuple[str, str]], name: str) -> str | None:
    for cookie_name, value in pairs:
        if cookie_name == name:
            return value
    return None


def clean_cookie_header(value: str) -> str | None:
    """The Cookie header as Snowplow's collector records it: only RFC 6265-clean parts, `;`-joined."""
    parts = [part for part in value.replace(" ", "").split(";") if part and _COOKIE_OCTETS.fullmatch(part)]
    return ";".join(parts) if parts else None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a tracking request, decided once per request (spec/protocol.md 3.2)."""

    network_user_id: str
    anonymous: bool
    do_not_track: bool
    should_bounce: bool
    had_cookie: bool


def decide_identity(
    settings: CollectorSettings,
    cookies: list[tuple[str, str]],
    nuid_param: str | None,
    querystring: str,
    anonymous: bool,
    pixel_route: bool,
    redirect: bool,
) -> Identity:
    request_cookie = first_cookie(cookies, settings.cookie.name)
    dnt = settings.do_not_track_cookie
    do_not_track = dnt.enabled and any(
        name == dnt.name and re.fullmatch(dnt.value, value) is not None for name, value in cookies
    )
    bounce = settings.cookie_bounce
    already_bouncing = bounce.enabled and bounce.name in querystring
    if anonymous:
        nuid = ANONYMOUS_NETWORK_USER_ID
    elif nuid_param is not None:
        nuid = nuid_param
    elif request_cookie is not None:
        nuid = request_cookie
    elif already_bouncing:
        nuid = bounce.fallback_network_user_id
    else:
        nuid = str(uuid.uuid4())
    should_bounce = (
        bounce.enabled
        and nuid_param is None
        and request_cookie is None
        and not already_bouncing
        and pixel_route
        and not redirect
        and not anonymous
    )
    return Identity(nuid, anonymous, do_not_track, should_bounce, request_cookie is not None)


@functools.lru_cache(maxsize=4)
def _http_date(seconds: int) -> str:
    # Called for every tracking response with the same second most of the time.
    return formatdate(seconds, usegmt=True)


def cookie_domain(settings: CollectorSettings, origin_header: str | None) -> str | None:
    """The first configured domain equal to, or a dot-suffix of, an Origin host; else the fallback."""
    configured = settings.cookie.domains
    if configured and origin_header:
        hosts = [urlsplit(origin).hostname for origin in origin_header.split()]
        for domain in configured:
            if any(host and (host == domain or host.endswith("." + domain)) for host in hosts):
                return domain
    return settings.cookie.fallback_domain


def set_cookie_headers(
    settings: CollectorSettings, identity: Identity, origin: str | None, now_s: float
) -> list[bytes]:
    """The Set-Cookie header values for a tracking response (none, one, or with the client copy)."""
    cookie = settings.cookie
    if not cookie.enabled or identity.do_not_track:
        return []
    lifetime = cookie.expiration_days * 86400
    if identity.anonymous:
        if not identity.had_cookie:
            return []
        value, expires = "", now_s - lifetime  # expire it: SP-Anonymous clears the identity
    else:
        value, expires = identity.network_user_id, now_s + lifetime
    attributes = [f"Expires={_http_date(int(expires))}", "Path=/"]
    domain = cookie_domain(settings, origin)
    if domain:
        attributes.append(f"Domain={domain}")
    if cookie.same_site:
        attributes.append(f"SameSite={cookie.same_site}")
    if cookie.secure:
        attributes.append("Secure")
    tail = "; ".join(attributes)
    headers = [f"{cookie.name}={value}; {tail}{'; HttpOnly' if cookie.http_only else ''}".encode("latin-1")]
    if cookie.client_cookie_name:
        headers.append(f"{cookie.client_cookie_name}={value}; {tail}".encode("latin-1"))
    return headers
