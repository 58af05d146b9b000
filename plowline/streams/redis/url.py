"""The redis:// URL: server, stream key and parameters, the transport's defaults, and a client for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from plowline.errors import ConfigError
from plowline.streams.members import MEMBER_PARAMS, parse_membership
from plowline.streams.url_params import UrlParams

DEFAULT_PORT: Final = 6379
DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000
DEFAULT_CLAIM_IDLE_S: Final = 30.0
#: The stream entry field that holds the record's bytes (one field per entry).
RECORD_FIELD: Final = b"record"

_MAX_RECORD_BYTES_LIMIT = 512 * 1024 * 1024  # Redis' default proto-max-bulk-len
_MIN_CLAIM_IDLE_S, _MAX_CLAIM_IDLE_S = 0.1, 86_400.0
_CONNECT_TIMEOUT_S = 5.0

#: What an acknowledged write survives; see the package docstring.
Durability = Literal["aof-fsync", "aof", "memory", "unknown"]
WaitAof = Literal["auto", "on", "off"]

_URL_PARAMS = frozenset({"max_record_bytes", "maxlen", "wait_aof", "claim_idle_s", "db"}) | MEMBER_PARAMS
_URL_FIX = "use redis://HOST:PORT/STREAM[?db=N&maxlen=N&wait_aof=auto|0|1&claim_idle_s=S&max_record_bytes=N]"


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """A parsed redis:// URL. Sinks ignore the source's parameters and sources the sink's."""

    host: str
    port: int
    db: int
    stream: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    maxlen: int | None = None
    wait_aof: WaitAof = "auto"
    claim_idle_s: float = DEFAULT_CLAIM_IDLE_S

    def client(self, client_name: str) -> Redis:
        """A client with its own connection pool; connects on first use, never retries by itself."""
        return Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username,
            password=self.password,
            socket_timeout=None,  # each call has its own deadline: see _within
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the caller retries on TransportError; no hidden repeats
            client_name=client_name,
        )


def parse_url(url: str) -> RedisUrl:
    """Parse a redis:// URL (see the package docstring); ConfigError naming the bad part and the fix."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ConfigError("stream url", f"{url!r} is not a redis:// url", _URL_FIX)
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError("stream url", f"bad port in {url!r}: {exc}", _URL_FIX) from exc
    if not host:
        raise ConfigError("stream url", f"{url!r} names no host", _URL_FIX)
    stream = unquote(parts.path[1:])
    if not stream:
        raise ConfigError("stream url", f"{url!r} names no stream", _URL_FIX)
    if stream.isdigit():
        raise ConfigError(
            "stream url",
            f"stream {stream!r} in {url!r} looks like a database number",
            "name the stream (e.g. redis://HOST:PORT/plowline:raw) and give the database as ?db=N",
        )
    params = UrlParams(url, parts.query, _URL_PARAMS)

    hint = ", above the longest batch processing"
    claim_idle_s = params.seconds("claim_idle_s", DEFAULT_CLAIM_IDLE_S, _MIN_CLAIM_IDLE_S, _MAX_CLAIM_IDLE_S, hint)
    wait_aof: WaitAof = "auto"
    raw = params.raw("wait_aof")
    if raw is not None:
        choices: dict[str, WaitAof] = {"auto": "auto", "1": "on", "0": "off"}
        if raw not in choices:
            raise ConfigError("stream url", f"wait_aof={raw!r} in {url!r}", "use wait_aof=auto, 1 or 0")
        wait_aof = choices[raw]
    parse_membership(params.values, url)  # validated so a typo fails here too, then ignored: groups share natively
    return RedisUrl(
        host=host,
        port=port,
        db=params.integer("db", 0, 1 << 16) or 0,
        stream=stream,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        max_record_bytes=params.integer("max_record_bytes", 1, _MAX_RECORD_BYTES_LIMIT) or DEFAULT_MAX_RECORD_BYTES,
        maxlen=params.integer("maxlen", 1, 1 << 62),
        wait_aof=wait_aof,
        claim_idle_s=claim_idle_s,
    )
