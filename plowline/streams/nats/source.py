"""NatsSource: one member of a consumer group, reading through the group's durable pull consumer."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import orjson
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

from plowline.errors import ConfigError, PlowlineError, TransportError
from plowline.streams.base import Batch
from plowline.streams.nats.connection import _NATS_ERRORS, _Connection, _describe, _ensure_stream, _status, _translate
from plowline.streams.nats.url import _NAME, NatsUrl, parse_url

_log = structlog.get_logger(__name__)

# A pull request lasts at most max_wait_s, and never longer than this, because close() waits for the open
# one to end before it releases (NAKs) its records: NAKs sent while a request of the closed reader still
# waited on the server made nats-server 2.9.10 hold one released record back until ack_wait and deliver
# another one twice.
_MAX_PULL_S = 1.0
_MIN_PULL_S = 0.01
_PULL_GRACE_S = 1.0  # a pull request whose expiry notice has not come this long after is considered gone
_ACK = b"+ACK"
_NAK = b"-NAK"


@dataclass(frozen=True, slots=True)
class NatsPosition:
    """A batch of one NatsSource (its `source` token), the `seq`-th it yielded."""

    source: str
    seq: int


@dataclass(slots=True)
class _Pull:
    """The source's one open pull request: its reply token, how many messages it asked for and got."""

    token: str
    wanted: int
    deadline: float  # loop time after which it is considered gone even without an expiry notice
    received: int = 0


class NatsSource:
    """One member of a consumer group, reading through the group's durable pull consumer, at least once.

    `batches()` keeps one pull request open at a time (so records arrive in stream order) and
    yields up to `max_records` records, waiting up to `max_wait_s` after the first one to fill a
    batch. A TransportError from it ends that iteration; calling `batches()` again continues.
    `ack(batch)` acks that batch and every earlier one; `close()` releases (NAKs) the rest, so the
    group's next reader gets them at once. Call `batches()` from one task at a time.
    """

    def __init__(self, url: NatsUrl, group: str) -> None:
        if not _NAME.fullmatch(group):
            raise ConfigError(
                "consumer group",
                f"{group!r} is not a JetStream consumer name",
                "name the consuming subsystem with letters, digits, '-' and '_', e.g. 'enrich'",
            )
        self.url = url
        self.stream = url.stream
        self.group = group
        self._token = secrets.token_hex(4)
        self._conn = _Connection(url, f"plowline-source-{url.stream}-{group}-{self._token}", self._lost_pull)
        self._ready = False  # the stream, the consumer and our delivery subscription exist
        self._inbox = ""
        self._sub: Subscription | None = None
        self._pull: _Pull | None = None
        self._pulls = 0
        self._buffer: deque[Msg] = deque()  # delivered, not yet yielded
        self._outstanding: dict[int, list[Msg]] = {}  # yielded, not acked: batch seq → messages
        self._seq = 0
        self._changed = asyncio.Event()  # a message or notice arrived, or close() was called
        self._error: PlowlineError | None = None
        self._closed = False

    async def _start(self) -> NATS:
        nc = await self._conn.get()
        if not self._ready:
            await _ensure_stream(nc, self.url)
            await self._ensure_consumer(nc)
            if self._sub is None:
                self._inbox = nc.new_inbox()
                self._sub = await nc.subscribe(f"{self._inbox}.*", cb=self._on_message)
            self._ready = True
        return nc

    async def _ensure_consumer(self, nc: NATS) -> None:
        """Create the group's durable consumer, or update the settings this URL may change (ack_wait...)."""
        config = api.ConsumerConfig(
            durable_name=self.group,
            description=f"Plowline consumer group {self.group!r}",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.url.ack_wait_s,
            max_deliver=-1,
            filter_subject=self.url.subject,
            max_ack_pending=self.url.max_ack_pending,
            replay_policy=api.ReplayPolicy.INSTANT,
        )
        try:
            await nc.jsm(timeout=self.url.timeout_s).add_consumer(self.stream, config)
        except nats.js.errors.BadRequestError as exc:
            raise ConfigError(
                "consumer group",
                f"JetStream refused consumer {self.group!r} on {self.url.where()}: {exc}",
                f"remove the old consumer (nats consumer rm {self.stream} {self.group}) or use another group name",
            ) from exc

    async def batches(self, max_records: int = 500, max_wait_s: float = 0.5) -> AsyncIterator[Batch]:
        """Yield batches of 1..max_records records in order, waiting up to `max_wait_s` after the first one."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        while not self._closed:
            try:
                nc = await self._start()
                messages = await self._fill(nc, max_records, max(0.0, max_wait_s))
            except _NATS_ERRORS as exc:
                if self._closed:
                    return
                self._ready = False
                raise _translate(exc, "reading", self.url) from exc
            if not messages:
                return
            self._seq += 1
            self._outstanding[self._seq] = messages
            yield Batch(records=[msg.data for msg in messages], position=NatsPosition(self._token, self._seq))

    async def _fill(self, nc: NATS, max_records: int, max_wait_s: float) -> list[Msg]:
        """Up to `max_records` messages: once that many arrived or `max_wait_s` after the first. [] once closed."""
        loop = asyncio.get_running_loop()
        first_at: float | None = None
        while not self._closed:
            self._changed.clear()  # before looking, so whatever arrives after the look wakes the wait
            if self._error is not None:
                error, self._error = self._error, None
                self._ready = False  # e.g. the consumer was deleted: create it again on the next call
                raise error
            now = loop.time()
            if self._buffer and first_at is None:
                first_at = now
            fill_until = first_at + max_wait_s if first_at is not None else None
            if len(self._buffer) >= max_records or (fill_until is not None and now >= fill_until):
                return [self._buffer.popleft() for _ in range(min(max_records, len(self._buffer)))]
            if self._pull is not None and now >= self._pull.deadline:
                self._pull = None  # its expiry notice was lost (a reconnect): the server forgot it too
            if self._pull is None:
                expires_s = fill_until - now if fill_until is not None else max_wait_s
                await self._request(nc, max_records - len(self._buffer), expires_s)
                continue  # look again: the request may already be answered
            wake_at = min(self._pull.deadline, fill_until) if fill_until is not None else self._pull.deadline
            try:
                async with asyncio.timeout(max(0.0, wake_at - now)):
                    await self._changed.wait()
            except TimeoutError:
                pass
        return []

    async def _request(self, nc: NATS, wanted: int, expires_s: float) -> None:
        """Open a pull request for `wanted` messages, lasting `expires_s` on the server."""
        expires_s = min(max(expires_s, _MIN_PULL_S), _MAX_PULL_S)
        self._pulls += 1
        token = str(self._pulls)
        loop = asyncio.get_running_loop()
        self._pull = _Pull(token, wanted, loop.time() + expires_s + _PULL_GRACE_S)
        request = orjson.dumps({"batch": wanted, "expires": int(expires_s * 1e9)})
        subject = f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self.stream}.{self.group}"
        await nc.publish(subject, request, reply=f"{self._inbox}.{token}")

    async def _on_message(self, msg: Msg) -> None:
        """A record delivered to one of our pull requests, or the server's notice about one."""
        status = _status(msg)
        pull = self._pull
        if status is None:
            self._buffer.append(msg)
            if pull is not None:
                pull.received += 1
                if pull.received >= pull.wanted:
                    self._pull = None
        elif status != "100":  # 100: an idle heartbeat, never asked for
            mine = pull is not None and msg.subject.rpartition(".")[2] == pull.token
            if status == "409" and "deleted" not in _describe(msg).lower():
                # Refused for now (too many waiting requests, a leader change...): ask again after a pause.
                _log.warning("nats_pull_refused", stream=self.stream, group=self.group, notice=_describe(msg))
                if pull is not None and mine:
                    pull.deadline = asyncio.get_running_loop().time() + _MAX_PULL_S
                self._changed.set()
                return
            if mine:
                self._pull = None
            if status == "409":
                self._error = TransportError(f"consumer {self.group!r} of {self.url.where()} is gone: {_describe(msg)}")
            elif status not in ("404", "408"):  # no messages / request expired: both just end the request
                self._error = TransportError(f"reading {self.url.where()} failed: {_describe(msg)}")
        self._changed.set()

    async def _await_pull_end(self) -> None:
        """Wait until the open pull request is filled or expired (at most `max_wait_s`, or 1 s)."""
        loop = asyncio.get_running_loop()
        while self._pull is not None and self._conn.healthy() and loop.time() < self._pull.deadline:
            self._changed.clear()
            try:
                async with asyncio.timeout(self._pull.deadline - loop.time()):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _lost_pull(self) -> None:
        """After a reconnect the server no longer knows our pull request: open a new one."""
        self._pull = None
        self._changed.set()

    async def ack(self, batch: Batch) -> None:
        """Ack the batch's records and those of every earlier un-acked batch; return once the server confirmed."""
        position = batch.position
        if not isinstance(position, NatsPosition):
            raise TypeError("not a batch of a nats:// source")
        if position.source != self._token:
            raise ValueError("a batch of another NatsSource: ack it with the source that read it")
        seqs = [seq for seq in self._outstanding if seq <= position.seq]
        messages = [msg for seq in seqs for msg in self._outstanding[seq]]
        if self._closed:
            raise RuntimeError(f"nats source {self.stream!r} is closed; its un-acked records were released")
        if not messages:
            return
        await self._confirm(messages, _ACK, "acking on")
        for seq in seqs:
            del self._outstanding[seq]

    async def _confirm(self, messages: Sequence[Msg], verdict: bytes, doing: str) -> None:
        """Send `verdict` (+ACK, -NAK) for each message in order; return once the server processed every one."""
        try:
            replies = await self._conn.request_all([(msg.reply, verdict) for msg in messages], len(messages))
        except _NATS_ERRORS as exc:
            raise _translate(exc, doing, self.url) from exc
        for reply in replies:
            if _status(reply) is not None:
                raise TransportError(
                    f"{doing} {self.url.where()} failed: {_describe(reply)} (was consumer {self.group!r} deleted?)"
                )

    async def close(self) -> None:
        """Release every un-acked record (NAK, in stream order) so the group's next reader gets it at once; disconnect.

        If the release fails (the server is unreachable), those records come back after `ack_wait_s`.
        """
        if self._closed:
            return
        self._closed = True
        self._changed.set()
        try:
            await self._await_pull_end()
            if self._sub is not None and self._conn.healthy():
                async with asyncio.timeout(self.url.timeout_s):
                    await self._sub.drain()  # type: ignore[no-untyped-call]  # then all delivered is in _buffer
                unacked = [msg for messages in self._outstanding.values() for msg in messages] + list(self._buffer)
                unacked.sort(key=lambda msg: msg.metadata.sequence.stream)
                if unacked:
                    await self._confirm(unacked, _NAK, "releasing un-acked records on")
        except (PlowlineError, *_NATS_ERRORS) as exc:
            _log.warning("nats_source_release_failed", stream=self.stream, group=self.group, error=repr(exc))
        finally:
            self._outstanding.clear()
            self._buffer.clear()
            await self._conn.close()


def open_nats_source(url: str, group: str) -> NatsSource:
    """Open `nats://HOST:PORT/STREAM[?ack_wait_s=S&max_ack_pending=N]` for reading by consumer group `group`.

    `member`/`members` are accepted and ignored: the sources of a group share its durable consumer.
    """
    return NatsSource(parse_url(url), group)
