"""Transports chosen by URL: `open_sink(url)` and `open_source(url, group)` pick one by scheme."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from plowline.errors import ConfigError, UnknownComponent
from plowline.registry import Registry
from plowline.streams.base import Batch, Sink, Source
from plowline.streams.file_log import open_file_sink, open_file_source
from plowline.streams.memory import open_memory_sink, open_memory_source
from plowline.streams.nats import open_nats_sink, open_nats_source
from plowline.streams.redis import open_redis_sink, open_redis_source

__all__ = ["SINKS", "SOURCES", "Batch", "Sink", "Source", "open_sink", "open_source"]

SinkOpener = Callable[[str], Sink]
SourceOpener = Callable[[str, str], Source]

SINKS: Registry[SinkOpener] = Registry("stream transport", [
    ("file", open_file_sink),      # file://DIR: segmented append-only log, group-committed fsync
    ("memory", open_memory_sink),  # memory://NAME: in-process, for tests
    ("nats", open_nats_sink),      # nats://HOST:PORT/STREAM: NATS JetStream, durable pull consumers
    ("redis", open_redis_sink),    # redis://HOST:PORT/STREAM: Redis Streams, consumer groups
])
SOURCES: Registry[SourceOpener] = Registry("stream transport", [
    ("file", open_file_source),
    ("memory", open_memory_source),
    ("nats", open_nats_source),
    ("redis", open_redis_source),
])


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError("stream url", f"{url!r} has no scheme", "use file://DIR, memory://NAME, ...")
    return scheme


def open_sink(url: str) -> Sink:
    """Open the sink a URL names, e.g. `file:///var/plowline/raw`."""
    try:
        opener = SINKS.get(_scheme(url))
    except UnknownComponent as exc:
        raise ConfigError("stream url", str(exc), f"use one of: {', '.join(SINKS.names())}") from exc
    return opener(url)


def open_source(url: str, group: str) -> Source:
    """Open a source on a URL's stream for one consumer group (e.g. "enrich")."""
    try:
        opener = SOURCES.get(_scheme(url))
    except UnknownComponent as exc:
        raise ConfigError("stream url", str(exc), f"use one of: {', '.join(SOURCES.names())}") from exc
    return opener(url, group)
