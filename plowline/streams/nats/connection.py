"""One NATS connection of a sink or source: connecting, reconnecting, the stream, and nats-py's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from plowline.errors import ConfigError, TransportError
from plowline.streams.nats.url import NatsUrl

_RECONNECT_WAIT_S = 0.5
_STATUS = "Status"
_DESCRIPTION = "Description"
_NO_RESPONDERS = "503"
#: What nats-py raises for a failed connection, request or API call (its JetStream errors included).
_NATS_ERRORS = (nats.errors.Error, OSError, TimeoutError)

_log = structlog.get_logger(__name__)


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
