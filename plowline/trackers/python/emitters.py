"""Emitters: send buffered events to a collector (tp2 POST batches, or one GET `/i` per event) and retry.

Two emitters share one core (batching, verdicts, backoff, counters):

* `Emitter` (synchronous, thread-safe, httpx.Client). Without `flush_interval` it sends on the tracking thread
  when `batch_size` events (or `max_batch_bytes`) are waiting, so a `track()` call may wait for one request
  (up to `request_timeout` if the collector hangs; during backoff it only buffers). With `flush_interval`, a
  daemon thread started on the first event sends every `flush_interval` seconds or as soon as a batch is full,
  so tracking never waits on the network: the choice for request handlers. Call `close()` (or leave the `with`
  block) before the process exits: the thread is a daemon, and what an in-memory buffer holds dies with it.
* `AsyncEmitter` (asyncio, httpx.AsyncClient). `input` never awaits: a full batch schedules a send task on the
  running loop; `await flush()` / `await aclose()` deliver the rest.

Delivery: an event leaves the buffer only once the collector answered 2xx for it (or refused it for good with a
4xx, see `retry`). One send runs at a time per emitter, so no event is in two requests at once. During an outage
the emitter backs off (exponentially, with jitter) instead of hammering the collector; `flush(timeout)` keeps
retrying until everything is delivered or the timeout passes, and tells which.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from plowline.trackers.python.buffer import BufferedEvent, EventBuffer, MemoryBuffer
from plowline.trackers.python.payload import (
    ENVELOPE_BYTES,
    GET_PATH,
    POST_CONTENT_TYPE,
    STM_BYTES,
    TP2_PATH,
    get_parameters,
    post_body,
)
from plowline.trackers.python.retry import RetryPolicy, Verdict, classify_status, retry_after_seconds

logger = logging.getLogger(__name__)

Method = Literal["post", "get"]
EidsCallback = Callable[[list[str]], None]
RejectedCallback = Callable[[list[str], int], None]

DEFAULT_BATCH_SIZE = 10
#: The JS tracker's default `maxPostBytes`: a POST body is never bigger (an event bigger on its own goes alone).
DEFAULT_MAX_BATCH_BYTES = 40_000


def _eids(events: Sequence[BufferedEvent]) -> list[str]:
    return [str(orjson.loads(event.data).get("eid", "")) for event in events]


def _now_ms() -> str:
    return str(int(time.time() * 1000))


class _EmitterCore:
    """What both emitters share: configuration, batch selection, verdict handling, backoff and counters."""

    def __init__(
        self,
        endpoint: str,
        *,
        method: Method,
        batch_size: int,
        max_batch_bytes: int,
        buffer: EventBuffer | None,
        retry: RetryPolicy | None,
        request_timeout: float,
        on_success: EidsCallback | None,
        on_failure: RejectedCallback | None,
    ) -> None:
        if method not in ("post", "get"):
            raise ValueError(f"method must be 'post' or 'get', not {method!r}")
        if batch_size < 1 or max_batch_bytes < 1:
            raise ValueError("batch_size and max_batch_bytes must be positive")
        if "://" not in endpoint:
            endpoint = "https://" + endpoint
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise ValueError(f"the collector endpoint must be an http(s) URL, not {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.method: Method = method
        self.batch_size = batch_size  # with GET: events waiting before they are sent (each in its own request)
        self.max_batch_bytes = max_batch_bytes
        self.buffer: EventBuffer = buffer if buffer is not None else MemoryBuffer()
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.on_success = on_success
        self.on_failure = on_failure
        #: Events the collector acknowledged (2xx), refused for good (4xx), and failed requests so far.
        self.acknowledged = 0
        self.rejected = 0
        self.failed_requests = 0
        self._failures_in_a_row = 0
        self._next_attempt = 0.0  # time.monotonic() before which no request is made (backoff)
        self._bytes_waiting = 0
        self._state = threading.Lock()

    @property
    def url(self) -> str:
        return self.endpoint + (TP2_PATH if self.method == "post" else GET_PATH)

    @property
    def pending(self) -> int:
        """Events waiting in the buffer."""
        return len(self.buffer)

    @property
    def dropped(self) -> int:
        """Events the bounded buffer dropped (oldest first) because it was full."""
        return self.buffer.dropped

    def _accept(self, data: bytes) -> bool:
        """Buffer one event; whether a batch is now ready to go."""
        self.buffer.put(data)
        with self._state:
            self._bytes_waiting += len(data)
            ready = self._bytes_waiting >= self.max_batch_bytes
        return ready or len(self.buffer) >= self.batch_size

    def _batch_ready(self) -> bool:
        waiting = len(self.buffer)
        return waiting >= self.batch_size or (waiting > 0 and self._bytes_waiting >= self.max_batch_bytes)

    def _backoff_remaining(self) -> float:
        with self._state:
            return max(0.0, self._next_attempt - time.monotonic())

    def _next_batch(self) -> list[BufferedEvent]:
        """The oldest events that fit one request: `batch_size` events and `max_batch_bytes` (at least one)."""
        events = self.buffer.peek(self.batch_size if self.method == "post" else 1)
        total = ENVELOPE_BYTES  # as batch_bytes(), incrementally
        for index, event in enumerate(events):
            total += len(event.data) + STM_BYTES + (1 if index else 0)
            if index and total > self.max_batch_bytes:
                return events[:index]
        return events

    def _settle(
        self, events: Sequence[BufferedEvent], verdict: Verdict, status: int | None, retry_after: float | None
    ) -> None:
        """Apply a request's verdict to its events, the counters and the backoff."""
        if verdict is Verdict.RETRY:
            with self._state:
                self.failed_requests += 1
                self._failures_in_a_row += 1
                delay = self.retry.delay(self._failures_in_a_row, retry_after)
                self._next_attempt = time.monotonic() + delay
            logger.info("collector request failed (status %s); retrying in %.2fs", status, delay)
            return
        self.buffer.remove([event.id for event in events])
        with self._state:
            self._failures_in_a_row = 0
            self._next_attempt = 0.0
            self._bytes_waiting = max(0, self._bytes_waiting - sum(len(event.data) for event in events))
            if not len(self.buffer):
                self._bytes_waiting = 0
            if verdict is Verdict.DELIVERED:
                self.acknowledged += len(events)
            else:
                self.rejected += len(events)
        if verdict is Verdict.DELIVERED:
            if self.on_success is not None:
                self.on_success(_eids(events))
        else:
            logger.warning("collector refused %d events with HTTP %s; dropped them", len(events), status)
            if self.on_failure is not None:
                self.on_failure(_eids(events), status or 0)

    def _verdict(self, response: httpx.Response | None) -> tuple[Verdict, int | None, float | None]:
        if response is None:
            return Verdict.RETRY, None, None
        return classify_status(response.status_code), response.status_code, retry_after_seconds(
            response.headers.get("Retry-After")
        )


class Emitter(_EmitterCore):
    """Synchronous, thread-safe emitter (see the module docstring). Use as a context manager or call close()."""

    def __init__(
        self,
        endpoint: str,
        *,
        method: Method = "post",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        buffer: EventBuffer | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 10.0,
        flush_interval: float | None = None,
        client: httpx.Client | None = None,
        on_success: EidsCallback | None = None,
        on_failure: RejectedCallback | None = None,
    ) -> None:
        super().__init__(endpoint, method=method, batch_size=batch_size, max_batch_bytes=max_batch_bytes,
                         buffer=buffer, retry=retry, request_timeout=request_timeout, on_success=on_success,
                         on_failure=on_failure)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=request_timeout)
        self._send_lock = threading.Lock()
        self.flush_interval = flush_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closed = False

    def input(self, data: bytes) -> None:
        """Take one encoded event; send a batch if one is ready (inline, or by waking the sending thread)."""
        if self._closed:
            raise RuntimeError("the emitter is closed")
        ready = self._accept(data)
        if self.flush_interval is not None:
            self._ensure_thread()
            if ready:
                self._wake.set()
        elif ready and self._backoff_remaining() == 0 and self._send_lock.acquire(blocking=False):
            try:
                self._send_ready()
            finally:
                self._send_lock.release()

    def _send_ready(self) -> None:
        """Send full batches until fewer than a batch wait or a request fails (the send lock is held)."""
        while self._batch_ready():
            if not self._send_batch():
                return

    def _send_batch(self) -> bool:
        """One request (POST) or one per event (GET) for the oldest batch; False if it must be retried."""
        events = self._next_batch()
        if not events:
            return True
        if self.method == "post":
            body = post_body([event.data for event in events], _now_ms())
            return self._request(events, "POST", content=body, headers={"Content-Type": POST_CONTENT_TYPE})
        return all(self._request([event], "GET", params=get_parameters(event.data, _now_ms())) for event in events)

    def _request(self, events: Sequence[BufferedEvent], method: str, **options: Any) -> bool:
        try:
            response: httpx.Response | None = self._client.request(
                method, self.url, timeout=self.request_timeout, **options
            )
        except httpx.TransportError as exc:
            logger.debug("collector unreachable: %s", exc)
            response = None
        verdict, status, retry_after = self._verdict(response)
        self._settle(events, verdict, status, retry_after)
        return verdict is not Verdict.RETRY

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Send everything buffered, retrying with backoff; True once the buffer is empty, False if `timeout`
        seconds passed first (the rest stays buffered and is sent later)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._send_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        try:
            while len(self.buffer):
                wait = self._backoff_remaining()
                if deadline is not None and time.monotonic() + wait > deadline:
                    return False
                if wait:
                    time.sleep(wait)
                self._send_batch()
            return True
        finally:
            self._send_lock.release()

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="plowline-tracker-emitter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        assert self.flush_interval is not None
        while not self._stopping.is_set():
            backoff = self._backoff_remaining()
            self._wake.wait(backoff or self.flush_interval)
            self._wake.clear()
            if self._stopping.is_set() or not len(self.buffer) or self._backoff_remaining():
                continue
            with self._send_lock:
                while len(self.buffer) and not self._stopping.is_set() and self._send_batch():
                    pass

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (see flush), stop the sending thread, release the client and the buffer. True if all was sent."""
        if self._closed:
            return len(self.buffer) == 0
        delivered = self.flush(timeout)
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.request_timeout + 5)
        if self._owns_client:
            self._client.close()
        self.buffer.close()
        return delivered

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEmitter(_EmitterCore):
    """asyncio emitter on httpx.AsyncClient (see the module docstring). `input` is synchronous and never waits;
    `await flush()` and `await aclose()` deliver; use as an async context manager."""

    def __init__(
        self,
        endpoint: str,
        *,
        method: Method = "post",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        buffer: EventBuffer | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        on_success: EidsCallback | None = None,
        on_failure: RejectedCallback | None = None,
    ) -> None:
        super().__init__(endpoint, method=method, batch_size=batch_size, max_batch_bytes=max_batch_bytes,
                         buffer=buffer, retry=retry, request_timeout=request_timeout, on_success=on_success,
                         on_failure=on_failure)
        self._owns_client = client is None
        self._client = client
        self._send_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.request_timeout)
        return self._client

    def _lock(self) -> asyncio.Lock:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        return self._send_lock

    def input(self, data: bytes) -> None:
        """Take one encoded event; with a batch ready and a running loop, schedule its sending."""
        if self._closed:
            raise RuntimeError("the emitter is closed")
        if not self._accept(data) or self._backoff_remaining():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the events wait for flush()
        if self._lock().locked():
            return  # the running send keeps going while full batches wait
        task = loop.create_task(self._send_ready())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_ready(self) -> None:
        async with self._lock():
            while self._batch_ready():
                if not await self._send_batch():
                    return

    async def _send_batch(self) -> bool:
        events = self._next_batch()
        if not events:
            return True
        if self.method == "post":
            body = post_body([event.data for event in events], _now_ms())
            return await self._request(events, "POST", content=body, headers={"Content-Type": POST_CONTENT_TYPE})
        for event in events:
            if not await self._request([event], "GET", params=get_parameters(event.data, _now_ms())):
                return False
        return True

    async def _request(self, events: Sequence[BufferedEvent], method: str, **options: Any) -> bool:
        try:
            response: httpx.Response | None = await self._http().request(
                method, self.url, timeout=self.request_timeout, **options
            )
        except httpx.TransportError as exc:
            logger.debug("collector unreachable: %s", exc)
            response = None
        verdict, status, retry_after = self._verdict(response)
        self._settle(events, verdict, status, retry_after)
        return verdict is not Verdict.RETRY

    # The same `timeout` as Emitter.flush, applied with asyncio.timeout inside.
    async def flush(self, timeout: float | None = 30.0) -> bool:  # noqa: ASYNC109
        """Send everything buffered, retrying with backoff; True once the buffer is empty, False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                async with self._lock():
                    while len(self.buffer):
                        wait = self._backoff_remaining()
                        if wait:
                            await asyncio.sleep(wait)
                        await self._send_batch()
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float | None = 30.0) -> bool:  # noqa: ASYNC109
        """Flush, then release the client and the buffer. True if everything was delivered."""
        if self._closed:
            return len(self.buffer) == 0
        delivered = await self.flush(timeout)
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
        self.buffer.close()
        return delivered

    async def __aenter__(self) -> AsyncEmitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
