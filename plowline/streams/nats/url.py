"""The nats:// URL: stream, servers and parameters, and the transport's defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from plowline.errors import ConfigError
from plowline.streams.members import MEMBER_PARAMS, parse_membership
from plowline.streams.url_params import UrlParams

DEFAULT_PORT: Final = 4222
#: The server's default `max_payload`; the real limit is read from the server when connecting.
DEFAULT_MAX_RECORD_BYTES: Final = 1_048_576
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_IN_FLIGHT: Final = 1000
DEFAULT_ACK_WAIT_S: Final = 30.0
DEFAULT_MAX_ACK_PENDING: Final = 20_000

_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")  # stream and group names: safe as subject tokens and file names
_URL_FIX = "use nats://HOST:PORT/STREAM[?max_age_s=S&max_bytes=N&replicas=N&ack_wait_s=S&timeout_s=S&...]"


@dataclass(frozen=True, slots=True)
class NatsUrl:
    """A parsed nats:// URL. Sinks ignore the source's parameters and sources the sink's."""

    servers: tuple[str, ...] = field(repr=False)  # nats://[user:password@]host:port, credentials included
    hosts: tuple[str, ...]  # host:port, for messages
    stream: str
    max_age_s: float = 0.0
    max_bytes: int | None = None
    replicas: int = 1
    max_record_bytes: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ack_wait_s: float = DEFAULT_ACK_WAIT_S
    max_ack_pending: int = DEFAULT_MAX_ACK_PENDING

    @property
    def subject(self) -> str:
        """The subject records are published on: `STREAM.records`."""
        return f"{self.stream}.records"

    def where(self) -> str:
        """`nats://host:port/STREAM` without credentials, for messages."""
        return f"nats://{','.join(self.hosts)}/{self.stream}"


_URL_PARAMS = (
    frozenset(
        {"max_age_s", "max_bytes", "replicas", "max_record_bytes", "timeout_s", "max_in_flight", "ack_wait_s",
         "max_ack_pending"}
    )
    | MEMBER_PARAMS
)


def parse_url(url: str) -> NatsUrl:
    """Parse a nats:// URL (see the package docstring); ConfigError naming the bad part and the fix."""
    parts = urlsplit(url)
    if parts.scheme != "nats":
        raise ConfigError("stream url", f"{url!r} is not a nats:// url", _URL_FIX)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    servers: list[str] = []
    hosts: list[str] = []
    for hostport in hostlist.split(","):
        try:
            location = urlsplit(f"//{hostport}")
            host, port = location.hostname, location.port or DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError("stream url", f"bad host {hostport!r} in {url!r}: {exc}", _URL_FIX) from exc
        if not host:
            raise ConfigError("stream url", f"{url!r} names no host", _URL_FIX)
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hosts.append(shown)
        servers.append(f"nats://{userinfo}@{shown}" if userinfo else f"nats://{shown}")
    stream = parts.path[1:]
    if not _NAME.fullmatch(stream):
        raise ConfigError(
            "stream url",
            f"stream {stream!r} in {url!r} is not a JetStream stream name",
            "name the stream after the host, with letters, digits, '-' and '_' only, e.g. nats://HOST:4222/plowline-raw",
        )
    params = UrlParams(url, parts.query, _URL_PARAMS)

    parse_membership(params.values, url)  # validated so a typo fails here too, then ignored: groups share natively
    return NatsUrl(
        servers=tuple(servers),
        hosts=tuple(hosts),
        stream=stream,
        max_age_s=params.seconds("max_age_s", 0.0, 0.0, 100 * 365 * 86_400.0),
        max_bytes=params.integer("max_bytes", 1, 1 << 62),
        replicas=params.integer("replicas", 1, 5) or 1,
        max_record_bytes=params.integer("max_record_bytes", 1, 1 << 30),
        timeout_s=params.seconds("timeout_s", DEFAULT_TIMEOUT_S, 0.1, 3_600.0),
        max_in_flight=params.integer("max_in_flight", 1, 1_000_000) or DEFAULT_MAX_IN_FLIGHT,
        ack_wait_s=params.seconds("ack_wait_s", DEFAULT_ACK_WAIT_S, 0.1, 86_400.0),
        max_ack_pending=params.integer("max_ack_pending", 1, 1 << 31) or DEFAULT_MAX_ACK_PENDING,
    )
