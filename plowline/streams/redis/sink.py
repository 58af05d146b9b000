"""RedisSink: appends records to the stream, one pipelined round trip per write, as durable as the server allows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from redis.exceptions import RedisError, ResponseError

from plowline.errors import ConfigError, TransportError
from plowline.streams.redis.calls import _instance_name, _translate, _within
from plowline.streams.redis.url import (
    RECORD_FIELD,
    Durability,
    RedisUrl,
    parse_url,
)
from plowline.streams.url_params import check_records

_log = structlog.get_logger(__name__)

_WAITAOF_TIMEOUT_MS = 5_000


class RedisSink:
    """Appends each record as one stream entry (field `record`), one pipelined round trip per write.

    `write` returns once Redis acknowledged every XADD of the call and, when waiting for AOF, once
    `WAITAOF 1 0` confirmed the local fsync: see `durability`. If it raises, some of the records may
    have been appended (the pipeline is not a transaction), so a retry can duplicate them, which
    at-least-once delivery allows.
    """

    def __init__(self, url: RedisUrl) -> None:
        self.url = url
        self.stream = url.stream
        self.max_record_bytes = url.max_record_bytes
        #: What an acked write survives, known after the first write (None before).
        self.durability: Durability | None = None
        #: This sink's connections' name in CLIENT LIST.
        self.client_name = f"plowline-sink-{_instance_name()}"
        self._client = url.client(self.client_name)
        self._wait_aof: bool | None = None  # decided at the first write, again after a failure
        self._healthy = True
        self._closed = False

    async def write(self, records: Sequence[bytes]) -> None:
        """Append `records` in order; return once acknowledged (and fsynced, with wait_aof).

        Raises ValueError (nothing written) for a record that is empty, not bytes or too big,
        TransportError when Redis fails or is unreachable (a retry may succeed), and ConfigError when
        the key holds another type or `wait_aof=1` asks for fsyncs the server cannot confirm.
        """
        if self._closed:
            raise RuntimeError(f"redis sink {self.stream!r} is closed")
        check_records(records, self.max_record_bytes)
        if not records:
            return
        try:
            if self._wait_aof is None:
                self._wait_aof = await self._decide_wait_aof()
            async with self._client.pipeline(transaction=False) as pipe:
                for record in records:
                    pipe.xadd(self.stream, {RECORD_FIELD: bytes(record)}, maxlen=self.url.maxlen, approximate=False)
                if self._wait_aof:
                    pipe.execute_command("WAITAOF", 1, 0, _WAITAOF_TIMEOUT_MS)
                replies: list[Any] = await _within(pipe.execute())
        except (RedisError, TimeoutError) as exc:
            self._healthy = False
            self._wait_aof = None  # the server may have changed (restart, failover): look again
            raise _translate(exc, "XADD to", self.url) from exc
        except ConfigError:
            self._healthy = False
            raise
        if self._wait_aof and int(replies[-1][0]) < 1:
            self._healthy = False
            raise TransportError(f"redis did not fsync its AOF within {_WAITAOF_TIMEOUT_MS} ms (WAITAOF)")
        self._healthy = True

    async def _decide_wait_aof(self) -> bool:
        """Read the server's persistence settings; set `durability`; whether to send WAITAOF."""
        try:
            info = await _within(self._client.info())
        except ResponseError:  # INFO renamed or forbidden (some managed services)
            info = {}
        if not info:
            if self.url.wait_aof == "on":
                raise ConfigError("stream url", "wait_aof=1 but the server hides INFO", "use wait_aof=auto or 0")
            self.durability = "unknown"
            return False
        aof = int(info.get("aof_enabled", 0)) == 1
        version = tuple(int(part) for part in re.findall(r"\d+", str(info.get("redis_version", "0")))[:2])
        has_waitaof = version >= (7, 2)
        fsync_always = False
        if aof:
            try:
                value = next(iter((await _within(self._client.config_get("appendfsync"))).values()), b"")
                fsync_always = (value.decode() if isinstance(value, bytes) else str(value)) == "always"
            except ResponseError:  # CONFIG may be disabled; then only WAITAOF can confirm the fsync
                pass
        wait = aof and has_waitaof and self.url.wait_aof != "off"
        self.durability = "aof-fsync" if aof and (wait or fsync_always) else "aof" if aof else "memory"
        if self.url.wait_aof == "on" and self.durability != "aof-fsync":
            raise ConfigError(
                "stream url",
                f"wait_aof=1 but redis {info.get('redis_version')} at {self.url.host}:{self.url.port} "
                + ("cannot confirm fsyncs (WAITAOF needs Redis 7.2+)" if aof else "has appendonly off"),
                "enable appendonly (with Redis 7.2+ or appendfsync always), or use wait_aof=auto",
            )
        log = _log.info if self.durability == "aof-fsync" else _log.warning
        log("redis_sink_durability", stream=self.stream, durability=self.durability, wait_aof=wait)
        return wait

    def healthy(self) -> bool:
        """False once closed, and after a failed write until a write succeeds."""
        return self._healthy and not self._closed

    async def close(self) -> None:
        """Release the connections. Every write that returned is as durable as `durability` says."""
        self._closed = True
        await self._client.aclose()


def open_redis_sink(url: str) -> RedisSink:
    """Open `redis://HOST:PORT/STREAM[?maxlen=N&wait_aof=auto|0|1&max_record_bytes=N&db=N]` for writing."""
    return RedisSink(parse_url(url))
