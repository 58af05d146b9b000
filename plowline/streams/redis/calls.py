"""What sinks and sources share: client names, a deadline on every call, and redis-py's errors as Plowline's."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import ResponseError

from plowline.errors import ConfigError, PlowlineError, TransportError
from plowline.streams.redis.url import RedisUrl

_CALL_TIMEOUT_S = 10.0  # the deadline of one command or pipeline, on top of its BLOCK
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
T = TypeVar("T")


def _instance_name() -> str:
    """host-pid-random: unique per call, readable in CLIENT LIST and XINFO CONSUMERS."""
    return _NAME_UNSAFE.sub("_", f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")


async def _within(call: Awaitable[T], block_ms: int = 0) -> T:
    """Await a redis-py call with a deadline, raising TimeoutError when it passes.

    redis-py bounds socket writes with `asyncio.wait_for` when it has a socket_timeout, and on
    Python 3.11 `wait_for` can swallow a cancellation that races a completed write, leaving a
    cancelled reader task running. `asyncio.timeout` has no such race, so the clients have no
    socket_timeout and every call goes through here.
    """
    async with asyncio.timeout(_CALL_TIMEOUT_S + block_ms / 1000):
        return await call


def _translate(exc: Exception, doing: str, url: RedisUrl) -> PlowlineError:
    """The Plowline error for a redis-py error: ConfigError for a key of another type, else TransportError."""
    where = f"redis://{url.host}:{url.port}/{url.stream} (db {url.db})"
    if isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE"):
        return ConfigError("stream url", f"key {url.stream!r} of {where} is not a stream", "name another stream key")
    return TransportError(f"{doing} {where} failed: {exc!r}")
