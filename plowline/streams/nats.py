"""nats://HOST:PORT/STREAM: NATS JetStream, one file-backed stream per URL, a durable pull consumer per group.

URL: `nats://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/STREAM[?PARAM=VALUE&...]`. Several
comma-separated hosts name the servers of one cluster. STREAM is the JetStream stream's name
(letters, digits, `-` and `_`); its records are published on the subject `STREAM.records`, the only
subject of a stream this transport creates. Parameters (every one optional):

==================  ===================================================================================
`max_age_s`         stream: drop records older than this, default 0 = keep forever (the raw archive)
`max_bytes`         stream: drop the oldest records beyond this size, default unlimited
`replicas`          stream: copies kept by a NATS cluster (1 to 5), default 1
`max_record_bytes`  sinks refuse larger records; default and ceiling: the server's `max_payload`
                    (1 MiB unless the server is configured otherwise); known exactly after connecting
`timeout_s`         how long to wait to connect, and for each publish ack, ack confirmation or
                    JetStream API reply, default 10
`max_in_flight`     sinks: publishes of one write awaiting their ack at once, default 1000
`ack_wait_s`        sources: a delivered record not acked this long is delivered again, default 30
`max_ack_pending`   sources: records the whole group may hold un-acked at once, default 20000; keep it
                    above members x max_records x batches a member holds before acking
`member, members`   accepted (so one config works on every transport) and ignored: see Consumers
==================  ===================================================================================

Stream. A sink or source creates the stream when it does not exist: file storage, limits retention
(records stay after every group acked them: the stream is the raw archive and can be replayed),
discard old records only when `max_age_s`/`max_bytes` say so. The stream parameters apply only when
the stream is created; an existing stream is used as it is (change it with `nats stream edit`), but
it must capture `STREAM.records`, or opening it is a ConfigError.

Durability. `NatsSink.write` publishes every record (in order, up to `max_in_flight` awaiting acks
at once) and returns once JetStream acknowledged each one, i.e. stored it in the stream (on a
cluster with `replicas` > 1: on a majority of the replicas). A single server writes acked records to
its store files at once, so they survive a crash or restart of the server process, but fsyncs them
periodically, not per record, so a power loss or OS crash of that machine can lose the last ones;
use `replicas=3` on a cluster where that matters (or the server's `sync_interval`, nats-server 2.10+).
If `write` raises, some records may have been stored: retrying the call can duplicate them, which
at-least-once delivery allows.

Consumers. A `NatsSource` reads through a durable pull consumer named after its group ("enrich",
"archive", ...), created from the start of the stream (a new group reads the whole history) with
explicit acks and no limit on deliveries. Several sources of one group, in any processes on any
machines, share that consumer: JetStream hands each record to one of their pull requests. That is
why `?member=I&members=N` is not needed and ignored. A record delivered and not acked is delivered
again (to any source of the group) after `ack_wait_s`, which is how a crashed process's records come
back; `close()` releases the source's un-acked records at once (NAK) instead, after waiting for its
open pull request to end (at most `max_wait_s`, or 1 s: each pull request lasts no longer).

Delivery guarantees, beyond `plowline.streams.base`:

* Order: one source yields records in stream order, records released by another source (NAK, or
  `ack_wait_s` running out) first. Across the sources of a group there is no global order.
* Ack: `ack(batch)` acks the records of the batch and of every earlier un-acked batch of the same
  source, and returns once the server confirmed every ack. Set `ack_wait_s` above the longest time a
  batch is held before it is acked, or it is also delivered again (twice, which at-least-once
  allows).
* Errors: a failed connect, publish, fetch or ack raises TransportError (a retry may succeed); the
  connection reconnects by itself, forever, and `healthy()` is False meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

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
from plowline.streams.members import MEMBER_PARAMS, parse_membership
from plowline.streams.url_params import UrlParams, check_records

__all__ = [
    "DEFAULT_ACK_WAIT_S",
    "DEFAULT_MAX_ACK_PENDING",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT_S",
    "NatsPosition",
    "NatsSink",
    "NatsSource",
    "NatsUrl",
    "open_nats_sink",
    "open_nats_source",
    "parse_url",
]

DEFAULT_PORT: Final = 4222
#: The server's default `max_payload`; the real limit is read from the server when connecting.
DEFAULT_MAX_RECORD_BYTES: Final = 1_048_576
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_IN_FLIGHT: Final = 1000
DEFAULT_ACK_WAIT_S: Final = 30.0
DEFAULT_MAX_ACK_PENDING: Final = 20_000

_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")  # stream and group names: safe as subject tokens and file names
_RECONNECT_WAIT_S = 0.5
# A pull request lasts at most max_wait_s, and never longer than this, because close() waits for the open
# one to end before it releases (NAKs) its records: NAKs sent while a request of the closed reader still
# waited on the server made nats-server 2.9.10 hold one released record back until ack_wait and deliver
# another one twice.
_MAX_PULL_S = 1.0
_MIN_PULL_S = 0.01
_PULL_GRACE_S = 1.0  # a pull request whose expiry notice has not come this long after is considered gone
_NO_SIZE_LIMIT = 1 << 62
_ACK = b"+ACK"
_NAK = b"-NAK"
_STATUS = "Status"
_DESCRIPTION = "Description"
_NO_RESPONDERS = "503"
_URL_FIX = "use nats://HOST:PORT/STREAM[?max_age_s=S&max_bytes=N&replicas=N&ack_wait_s=S&timeout_s=S&...]"
#: What nats-py raises for a failed connection, request or API call (its JetStream errors included).
_NATS_ERRORS = (nats.errors.Error, OSError, TimeoutError)

_log = structlog.get_logger(__name__)


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
    """Parse a nats:// URL (see the module docstring); ConfigError naming the bad part and the fix."""
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



def _status(msg: Msg) -> str | None:
    """The status code of a server notice ("408", "503", ...); None for a message carrying data."""
    return msg.headers.get(_STATUS) if msg.headers else None


def _describe(msg: Msg) -> str:
    description = msg.headers.get(_DESCRIPTION, "") if msg.headers else ""
    return f"{_status(msg)} {description}".strip()


def _subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (`*` one token, `>` the rest) captures `subject`."""
    tokens, wanted = pattern.split("."), subject.split(".")
    for i, token in enumerate(tokens):
        if token == ">":
            return len(wanted) > i
        if i >= len(wanted) or token not in ("*", wanted[i]):
            return False
    return len(tokens) == len(wanted)


async def _ensure_stream(nc: NATS, url: NatsUrl) -> None:
    """Create the stream when it does not exist; ConfigError if an existing one does not capture our subject."""
    jsm = nc.jsm(timeout=url.timeout_s)
    try:
        info = await jsm.stream_info(url.stream)
    except nats.js.errors.NotFoundError:
        config = api.StreamConfig(
            name=url.stream,
            description="Plowline records (nats:// transport)",
            subjects=[url.subject],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=url.max_age_s,
            max_bytes=url.max_bytes,
            num_replicas=url.replicas,
        )
        try:
            await jsm.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            # Created meanwhile by another process (with other limits: theirs win), or refused.
            try:
                info = await jsm.stream_info(url.stream)
            except nats.js.errors.NotFoundError:
                raise ConfigError(
                    "stream url", f"JetStream refused to create {url.where()}: {exc}", "fix the stream parameters"
                ) from exc
        else:
            _log.info("nats_stream_created", stream=url.stream, subject=url.subject, replicas=url.replicas)
            return
    subjects = info.config.subjects or []
    if not any(_subject_matches(pattern, url.subject) for pattern in subjects):
        raise ConfigError(
            "stream url",
            f"the existing stream {url.where()} captures {subjects}, not {url.subject!r}",
            f"add {url.subject!r} to its subjects (nats stream edit), or name another stream",
        )


class _Connection:
    """One NATS connection of a sink or source: opened on first use, then reconnecting by itself forever.

    It also sends many requests in order and awaits their replies (publishes awaiting their JetStream
    ack, acks awaiting their confirmation) through one reply subscription, one token per request.
    """

    def __init__(self, url: NatsUrl, name: str, on_reconnect: Callable[[], None] | None = None) -> None:
        self.url = url
        self.name = name
        self._on_reconnect = on_reconnect
        self._nc: NATS | None = None
        self._lock = asyncio.Lock()
        self._failed = False  # the last attempt to open the connection failed
        self._closing = False
        self._reply_prefix = ""
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = 0

    def healthy(self) -> bool:
        """Connected now, or not opened yet and no attempt failed."""
        if self._nc is None:
            return not self._failed
        return self._nc.is_connected

    @property
    def client(self) -> NATS | None:
        """The nats-py client once opened (None before)."""
        return self._nc

    async def get(self) -> NATS:
        """The open connection; opens it (waiting up to `timeout_s` for a server) on first use."""
        async with self._lock:
            if self._nc is not None and not self._nc.is_closed:
                return self._nc
            nc = NATS()
            try:
                async with asyncio.timeout(self.url.timeout_s):
                    await nc.connect(
                        servers=list(self.url.servers),
                        name=self.name,
                        connect_timeout=max(1, int(min(self.url.timeout_s, 5))),
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,  # never give up: healthy() says when it is down
                        reconnect_time_wait=_RECONNECT_WAIT_S,  # type: ignore[arg-type]  # nats-py annotates int
                        error_cb=self._on_error,
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                    )
                    self._reply_prefix = nc.new_inbox()
                    await nc.subscribe(f"{self._reply_prefix}.*", cb=self._on_reply)
            except BaseException:
                self._failed = True
                await _close_quietly(nc)
                raise
            self._failed = False
            self._nc = nc
            _log.info("nats_connected", connection=self.name, server=self.url.hosts)
            return nc

    async def request_all(self, requests: Sequence[tuple[str, bytes]], window: int) -> list[Msg]:
        """Send (subject, payload) requests in order, at most `window` awaiting a reply; return the replies.

        TimeoutError when a reply takes longer than `timeout_s` (counted from when it is awaited, so a
        long call is fine as long as replies keep coming). A request nobody answers gets the server's
        no-responders notice (status 503) as its reply.
        """
        nc = await self.get()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Msg]] = []
        tokens: list[str] = []
        try:
            for i, (subject, payload) in enumerate(requests):
                if i >= window:
                    await self._reply(futures[i - window])
                self._tokens += 1
                token = str(self._tokens)
                future: asyncio.Future[Msg] = loop.create_future()
                self._replies[token] = future
                tokens.append(token)
                futures.append(future)
                await nc.publish(subject, payload, reply=f"{self._reply_prefix}.{token}")
            return [await self._reply(future) for future in futures]
        finally:
            for token in tokens:
                self._replies.pop(token, None)
            for future in futures:
                future.cancel()  # no-op for the answered ones

    async def _reply(self, future: asyncio.Future[Msg]) -> Msg:
        async with asyncio.timeout(self.url.timeout_s):
            return await future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._replies.pop(msg.subject.rpartition(".")[2], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _on_error(self, exc: Exception) -> None:
        _log.warning("nats_connection_error", connection=self.name, error=repr(exc))

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        _log.warning("nats_disconnected", connection=self.name, server=self.url.hosts)

    async def _on_reconnected(self) -> None:
        _log.info("nats_reconnected", connection=self.name, server=self.url.hosts)
        if self._on_reconnect is not None:
            self._on_reconnect()

    async def close(self) -> None:
        self._closing = True
        nc, self._nc = self._nc, None
        if nc is not None:
            await _close_quietly(nc)


async def _close_quietly(nc: NATS) -> None:
    try:
        await nc.close()
    except _NATS_ERRORS as exc:
        _log.warning("nats_close_failed", error=repr(exc))


def _translate(exc: BaseException, doing: str, url: NatsUrl) -> TransportError:
    """The TransportError for a nats-py error (or a timeout), naming what failed where."""
    if isinstance(exc, nats.errors.NoRespondersError):
        return TransportError(f"{doing} {url.where()} failed: no JetStream answered (is the server run with -js?)")
    if isinstance(exc, TimeoutError) and not isinstance(exc, nats.errors.Error):
        return TransportError(f"{doing} {url.where()} failed: no answer within timeout_s={url.timeout_s:g}")
    return TransportError(f"{doing} {url.where()} failed: {exc!r}")


class NatsSink:
    """Publishes each record as one JetStream message on `STREAM.records`; see the module docstring.

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


def open_nats_sink(url: str) -> NatsSink:
    """Open `nats://HOST:PORT/STREAM[?max_age_s=S&max_bytes=N&replicas=N&timeout_s=S&max_in_flight=N]` for writing."""
    return NatsSink(parse_url(url))


def open_nats_source(url: str, group: str) -> NatsSource:
    """Open `nats://HOST:PORT/STREAM[?ack_wait_s=S&max_ack_pending=N]` for reading by consumer group `group`.

    `member`/`members` are accepted and ignored: the sources of a group share its durable consumer.
    """
    return NatsSource(parse_url(url), group)

