"""NatsSink: publishes records to the stream and returns once JetStream acknowledged each one."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import orjson
from nats.aio.msg import Msg

from plowline.errors import TransportError
from plowline.streams.nats.connection import (
    _NATS_ERRORS,
    _NO_RESPONDERS,
    _Connection,
    _describe,
    _ensure_stream,
    _status,
    _translate,
)
from plowline.streams.nats.url import DEFAULT_MAX_RECORD_BYTES, NatsUrl, parse_url
from plowline.streams.url_params import check_records

_NO_SIZE_LIMIT = 1 << 62


class NatsSink:
    """Publishes each record as one JetStream message on `STREAM.records`; see the package docstring.

    `write` returns once JetStream acknowledged every record of the call (stored it in the stream).
    Records of one sink are stored in the order they were written: they are sent in order on one
    connection, and only their acks are awaited concurrently.
    """

    def __init__(self, url: NatsUrl) -> None:
        self.url = url
        self.stream = url.stream
        #: The URL's `max_record_bytes`, else 1 MiB; lowered to the server's `max_payload` on connecting.
        self.max_record_bytes = url.max_record_bytes or DEFAULT_MAX_RECORD_BYTES
        self._conn = _Connection(url, f"plowline-sink-{url.stream}-{secrets.token_hex(3)}")
        self._stream_ready = False
        self._closed = False

    async def write(self, records: Sequence[bytes]) -> None:
        """Publish `records` in order; return once JetStream acknowledged every one of them."""
        if self._closed:
            raise RuntimeError(f"nats sink {self.stream!r} is closed")
        # Sizes are checked once connected, against the server's limit; types and emptiness at once.
        check_records(records, self.max_record_bytes if self._conn.client is not None else _NO_SIZE_LIMIT)
        if not records:
            return
        try:
            nc = await self._conn.get()
            self.max_record_bytes = min(self.url.max_record_bytes or nc.max_payload, nc.max_payload)
            check_records(records, self.max_record_bytes)
            if not self._stream_ready:
                await _ensure_stream(nc, self.url)
                self._stream_ready = True
            subject = self.url.subject
            replies = await self._conn.request_all(
                [(subject, bytes(record)) for record in records], self.url.max_in_flight
            )
        except _NATS_ERRORS as exc:
            raise _translate(exc, "publishing to", self.url) from exc
        for reply in replies:
            self._check_ack(reply)

    def _check_ack(self, reply: Msg) -> None:
        """Raise TransportError unless `reply` is JetStream's ack of a stored message."""
        status = _status(reply)
        if status == _NO_RESPONDERS:
            self._stream_ready = False  # the stream was deleted: the next write creates it again
            raise TransportError(f"no JetStream stream stored {self.url.subject!r} ({self.url.where()} is gone)")
        if status is not None:
            raise TransportError(f"publishing to {self.url.where()} failed: {_describe(reply)}")
        try:
            ack = orjson.loads(reply.data)
        except orjson.JSONDecodeError as exc:
            raise TransportError(f"publishing to {self.url.where()}: not a JetStream ack: {reply.data!r}") from exc
        if not isinstance(ack, dict) or "error" in ack or "seq" not in ack:
            raise TransportError(f"publishing to {self.url.where()} failed: {ack!r}")

    def healthy(self) -> bool:
        """False once closed, while disconnected, and after a failed attempt to connect."""
        return not self._closed and self._conn.healthy()

    async def close(self) -> None:
        """Close the connection. Every write that returned was acknowledged, so nothing is pending."""
        self._closed = True
        await self._conn.close()


def open_nats_sink(url: str) -> NatsSink:
    """Open `nats://HOST:PORT/STREAM[?max_age_s=S&max_bytes=N&replicas=N&timeout_s=S&max_in_flight=N]` for writing."""
    return NatsSink(parse_url(url))
