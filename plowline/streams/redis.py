"""redis://HOST:PORT/STREAM: Redis Streams with consumer groups, durable as far as the server persists.

URL: `redis://[[USER]:PASSWORD@]HOST[:PORT]/STREAM[?PARAM=VALUE&...]`. STREAM is the key, verbatim
after the first `/` (percent-decoded; `:` and `/` allowed, e.g. `plowline:raw`). The database is
`?db=N` (default 0), not a path segment, so a key can never be mistaken for a database number; a
key made only of digits is refused for that reason. Parameters (every one optional):

* `max_record_bytes`: the largest record a sink accepts, default 1_000_000 (as the other
  transports; Redis' own limit, proto-max-bulk-len, is 512 MB).
* `maxlen`: sinks trim the stream to its newest N entries on every XADD (exact `MAXLEN N`). Off by
  default: the stream is the raw archive. Trimming ignores consumer groups, so entries not yet read
  or acked can be trimmed; sources count those in `dropped` and log them.
* `wait_aof`: `auto` (default) waits for the server's fsync when it has AOF on; `1` requires it
  (ConfigError at the first write when the server cannot confirm fsyncs); `0` never waits.
* `claim_idle_s`: sources claim entries another consumer of the group has held un-acked this long,
  default 30 s. This is how a crashed worker's records are delivered again.
* `db`: the Redis database number, default 0.
* `member`, `members`: accepted (so one config works on every transport) and ignored, see below.

Durability. `RedisSink.write` returns once Redis acknowledged every XADD of the call, i.e. the
records are in the server's memory; what survives beyond that is the server's persistence
configuration, reported by `RedisSink.durability` after the first write:

* `"aof-fsync"`: AOF is on and every acked write is fsynced, confirmed by `WAITAOF 1 0` (Redis 7.2
  and later) or implied by `appendfsync always`. An acked write survives a Redis crash or restart.
* `"aof"`: AOF is on but fsync is not confirmed per write (`wait_aof=0`, or Redis older than 7.2
  with `appendfsync everysec`): a clean restart keeps everything, a server or OS crash can lose
  about the last second of acked writes.
* `"memory"`: no AOF (e.g. `--appendonly no --save ""`, as on the development machines): an acked
  write survives any crash of Plowline's own processes (producers and consumers) but NOT a restart
  or crash of Redis itself. Plowline's promise "an acknowledged request is durable" then holds only
  while Redis stays up; run Redis with `appendonly yes` (and Redis >= 7.2 for WAITAOF) in production.
* `"unknown"`: the server hides INFO; nothing is assumed and nothing is awaited (unless `wait_aof=1`).

Replicas are not awaited (WAITAOF's numreplicas is 0): a failover to a replica can lose writes the
old primary acknowledged.

Consumers. A `RedisSource` is one consumer (a name unique to it: host, pid, random) of the consumer
group named after the Source's group, created from the start of the stream (`XGROUP CREATE ... 0
MKSTREAM`), so a new group reads the stream's whole history. Several sources of one group, in any
processes on any machines, share the records natively: Redis hands each new entry to one consumer.
That is why `?member=I&members=N` is not needed and ignored. A source first re-reads its own
pending entries, then claims entries other consumers have held longer than `claim_idle_s`
(XAUTOCLAIM; this is how a crashed worker's records are redelivered), then reads new entries
(XREADGROUP COUNT max_records BLOCK ...). Every claim cycle also deletes consumers of the group that
have nothing pending and were idle at least `claim_idle_s` (XINFO CONSUMERS + XGROUP DELCONSUMER, in
one Lua script so a consumer that just received entries is never deleted with them). Before Redis
7.2 a consumer's idle time only restarts when it receives entries, so a live source on a quiet
stream can be deleted too: harmless, as it has nothing pending and Redis re-creates a consumer on
its next read. A source closed cleanly releases its un-acked entries: it marks them idle, so the
next source claims them at once instead of after `claim_idle_s`.

Delivery guarantees, beyond `plowline.streams.base`:

* Order: each source yields its own redelivered entries, then claimed ones, then new ones, each in
  stream order. Across sources of a group, and for redelivered entries, there is no global order.
* Ack: `ack(batch)` XACKs the batch's entries and those of every earlier un-acked batch of the same
  source. A batch not acked within `claim_idle_s` may also be claimed by another consumer of the
  group (delivered twice, which at-least-once allows): set `claim_idle_s` above the longest time a
  batch takes to be processed and acked.
* Errors: redis-py's own retries are off. A failed command raises TransportError (a retry may
  succeed); the next call reconnects. After a failed read the source re-reads its own pending entries
  first, so entries whose reply was lost are not left waiting for `claim_idle_s`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import StreamIdT

from plowline.errors import ConfigError, PlowlineError, TransportError
from plowline.streams.base import Batch
from plowline.streams.members import MEMBER_PARAMS, parse_membership
from plowline.streams.url_params import UrlParams, check_records

__all__ = [
    "DEFAULT_CLAIM_IDLE_S",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_PORT",
    "RECORD_FIELD",
    "Durability",
    "RedisPosition",
    "RedisSink",
    "RedisSource",
    "RedisUrl",
    "WaitAof",
    "open_redis_sink",
    "open_redis_source",
    "parse_url",
]

DEFAULT_PORT: Final = 6379
DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000
DEFAULT_CLAIM_IDLE_S: Final = 30.0
#: The stream entry field that holds the record's bytes (one field per entry).
RECORD_FIELD: Final = b"record"

_MAX_RECORD_BYTES_LIMIT = 512 * 1024 * 1024  # Redis' default proto-max-bulk-len
_MIN_CLAIM_IDLE_S, _MAX_CLAIM_IDLE_S = 0.1, 86_400.0
_MAX_BLOCK_S = 2.0  # a reader wakes at least this often, to claim, clean up and notice close()
_WAITAOF_TIMEOUT_MS = 5_000
_CALL_TIMEOUT_S = 10.0  # the deadline of one command or pipeline, on top of its BLOCK
_CONNECT_TIMEOUT_S = 5.0
_RELEASED_IDLE_MS = 10 * 365 * 86_400 * 1_000  # "idle for ten years": claimable by any claim_idle_s
_PAGE = 1_000
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

_log = structlog.get_logger(__name__)
T = TypeVar("T")

#: What an acknowledged write survives; see the module docstring.
Durability = Literal["aof-fsync", "aof", "memory", "unknown"]
WaitAof = Literal["auto", "on", "off"]

_URL_PARAMS = frozenset({"max_record_bytes", "maxlen", "wait_aof", "claim_idle_s", "db"}) | MEMBER_PARAMS
_URL_FIX = "use redis://HOST:PORT/STREAM[?db=N&maxlen=N&wait_aof=auto|0|1&claim_idle_s=S&max_record_bytes=N]"

# Deletes the group's consumers that have nothing pending and were idle at least ARGV[2] ms, except
# the caller ARGV[3], which is deleted (if it has nothing pending) only when ARGV[4] is "1". Atomic,
# so a consumer that receives entries between the check and the delete cannot lose them.
_DELETE_IDLE_CONSUMERS_LUA = """
local deleted = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  local mine = info['name'] == ARGV[3]
  if info['pending'] == 0 and ((mine and ARGV[4] == '1') or (not mine and info['idle'] >= tonumber(ARGV[2]))) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(deleted, info['name'])
  end
end
return deleted
"""


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
    """Parse a redis:// URL (see the module docstring); ConfigError naming the bad part and the fix."""
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


@dataclass(frozen=True, slots=True)
class RedisPosition:
    """A batch of one RedisSource (its consumer name), the `seq`-th it yielded."""

    consumer: str
    seq: int


_Entry = tuple[bytes, bytes]  # (entry id, record)


def _entries(reply: object) -> list[tuple[Any, Any]]:
    """The (id, fields) pairs of an XREADGROUP reply for one stream, whatever shape redis-py gives it."""
    if isinstance(reply, dict):
        per_stream = list(reply.values())
    elif isinstance(reply, list):
        per_stream = [item[1] for item in reply]
    else:
        return []
    out: list[tuple[Any, Any]] = []
    for stream_entries in per_stream:
        # The RESP3 shape wraps a stream's entry list once more.
        entries = stream_entries[0] if stream_entries and isinstance(stream_entries[0], list) else stream_entries
        out.extend((entry[0], entry[1]) for entry in entries or ())
    return out


class RedisSource:
    """One consumer of a Redis consumer group, at least once; see the module docstring for the details.

    `batches()` may block (up to a few seconds per round trip, without holding the event loop). A
    TransportError from it ends that iteration; calling `batches()` again reconnects and first
    re-reads this consumer's pending entries.
    """

    def __init__(self, url: RedisUrl, group: str) -> None:
        if not group:
            raise ConfigError("consumer group", "empty group name", "name the consuming subsystem, e.g. 'enrich'")
        self.url = url
        self.stream = url.stream
        self.group = group
        #: This source's consumer name in the group (host-pid-random).
        self.consumer = _instance_name()
        #: Entries that could not be delivered: trimmed (maxlen, XTRIM, XDEL) before being read or
        #: redelivered, or written by something else without a `record` field. Each is also logged.
        self.dropped = 0
        #: This source's connections' name in CLIENT LIST.
        self.client_name = f"plowline-source-{self.consumer}"
        self._client = url.client(self.client_name)
        self._delete_idle_consumers_script = self._client.register_script(_DELETE_IDLE_CONSUMERS_LUA)
        self._claim_idle_ms = max(1, int(url.claim_idle_s * 1000))
        self._claim_every_s = url.claim_idle_s / 2
        self._max_block_ms = max(1, int(min(_MAX_BLOCK_S, url.claim_idle_s / 4) * 1000))
        self._group_ready = False
        self._recover_from: bytes | None = b"0-0"  # re-read own pending entries after this id; None: done
        self._claim_cursor: bytes = b"0-0"
        self._next_claim_at = 0.0
        self._seq = 0
        self._outstanding: dict[int, tuple[bytes, ...]] = {}  # yielded, not acked: seq → entry ids
        self._delivered: set[bytes] = set()  # every id in _outstanding
        self._closed = False

    async def batches(self, max_records: int = 500, max_wait_s: float = 0.5) -> AsyncIterator[Batch]:
        """Yield batches of 1..max_records records, waiting up to `max_wait_s` to fill one."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        while not self._closed:
            try:
                entries = await self._fill(max_records, max_wait_s)
            except (RedisError, TimeoutError) as exc:
                if self._closed:
                    return
                self._group_ready = False  # the stream may have been deleted with its groups
                self._recover_from = b"0-0"  # replies lost with the connection: those entries are ours
                raise _translate(exc, "reading", self.url) from exc
            if not entries:
                return
            self._seq += 1
            ids = tuple(entry_id for entry_id, _ in entries)
            self._outstanding[self._seq] = ids
            self._delivered.update(ids)
            yield Batch(records=[record for _, record in entries], position=RedisPosition(self.consumer, self._seq))

    async def _fill(self, max_records: int, max_wait_s: float) -> list[_Entry]:
        """Gather up to `max_records` entries: own pending, then claimed, then new ones. [] once closed."""
        started = time.monotonic()
        got: list[_Entry] = []
        while not self._closed:
            left_s = started + max_wait_s - time.monotonic()
            if got and (len(got) >= max_records or left_s <= 0):
                return got
            count = max_records - len(got)
            await self._ensure_group()
            if self._recover_from is not None:
                got += await self._read_own_pending(count)
            elif time.monotonic() >= self._next_claim_at:
                got += await self._claim(count)
            else:
                wait_s = left_s if got else self._next_claim_at - time.monotonic()
                block_ms = max(1, min(self._max_block_ms, int(wait_s * 1000)))
                reply = await _within(
                    self._client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms),
                    block_ms,
                )
                got += await self._accept(_entries(reply), "read")
        return []

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await _within(self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True))
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        self._group_ready = True

    async def _read_own_pending(self, count: int) -> list[_Entry]:
        """This consumer's entries delivered before but not yielded (a lost reply), in id order."""
        assert self._recover_from is not None
        reply = await _within(
            self._client.xreadgroup(self.group, self.consumer, {self.stream: self._recover_from}, count=count)
        )
        entries = _entries(reply)
        self._recover_from = bytes(entries[-1][0]) if len(entries) >= count else None
        return await self._accept(entries, "pending")

    async def _claim(self, count: int) -> list[_Entry]:
        """Claim entries idle longer than claim_idle_s (XAUTOCLAIM); clean up consumers after each full pass."""
        reply = await _within(
            self._client.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, start_id=self._claim_cursor, count=count
            )
        )
        self._claim_cursor = bytes(reply[0])
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            self._count_dropped(len(deleted), "trimmed before redelivery")
        if self._claim_cursor == b"0-0":
            self._next_claim_at = time.monotonic() + self._claim_every_s
            await self._delete_idle_consumers(leaving=False)
        return await self._accept([(entry[0], entry[1]) for entry in reply[1]], "claimed")

    async def _delete_idle_consumers(self, *, leaving: bool) -> None:
        """Delete the group's consumers with nothing pending idle >= claim_idle_s (and this one if `leaving`)."""
        args: list[str | int] = [self.group, self._claim_idle_ms, self.consumer, "1" if leaving else "0"]
        gone = await _within(self._delete_idle_consumers_script(keys=[self.stream], args=args))
        if gone:
            _log.info("redis_idle_consumers_deleted", stream=self.stream, group=self.group, consumers=len(gone))

    async def _accept(self, entries: list[tuple[Any, Any]], how: str) -> list[_Entry]:
        """The entries this source has not yielded yet, as (id, record); ack and count undeliverable ones."""
        accepted: list[_Entry] = []
        undeliverable: list[bytes] = []
        for raw_id, fields in entries:
            entry_id = bytes(raw_id)
            if entry_id in self._delivered:
                continue  # ours, yielded and not yet acked: claimed back or re-read, never yielded twice
            record = fields.get(RECORD_FIELD) if fields else None
            if record:
                accepted.append((entry_id, bytes(record)))
            else:
                undeliverable.append(entry_id)
        if undeliverable:
            await _within(self._client.xack(self.stream, self.group, *undeliverable))
            self._count_dropped(len(undeliverable), f"{how} entry trimmed or without a record field")
        return accepted

    def _count_dropped(self, count: int, reason: str) -> None:
        self.dropped += count
        _log.warning("redis_entries_dropped", stream=self.stream, group=self.group, count=count, reason=reason)

    async def ack(self, batch: Batch) -> None:
        """XACK the batch's entries and those of every earlier un-acked batch of this source."""
        position = batch.position
        if not isinstance(position, RedisPosition):
            raise TypeError("not a batch of a redis:// source")
        if position.consumer != self.consumer:
            raise ValueError(f"a batch of consumer {position.consumer!r}: ack it with the source that read it")
        seqs = [seq for seq in self._outstanding if seq <= position.seq]
        ids = [entry_id for seq in seqs for entry_id in self._outstanding[seq]]
        if not ids:
            return
        try:
            await _within(self._client.xack(self.stream, self.group, *ids))
        except (RedisError, TimeoutError) as exc:
            raise _translate(exc, "XACK on", self.url) from exc
        for seq in seqs:
            self._delivered.difference_update(self._outstanding.pop(seq, ()))

    async def close(self) -> None:
        """Release un-acked entries to the group (claimable at once), leave the group, close connections.

        If the release fails (Redis unreachable), the entries are claimed after `claim_idle_s` instead.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._group_ready:
                await self._release_pending()
                await self._delete_idle_consumers(leaving=True)
        except (RedisError, TimeoutError) as exc:
            _log.warning("redis_source_release_failed", stream=self.stream, group=self.group, error=repr(exc))
        finally:
            await self._client.aclose()

    async def _release_pending(self) -> None:
        """Make every entry pending on this consumer look idle for years, so any claimer takes it now."""
        start: str | bytes = "-"
        while True:
            pending = await _within(
                self._client.xpending_range(
                    self.stream, self.group, min=start, max="+", count=_PAGE, consumername=self.consumer
                )
            )
            ids: list[StreamIdT] = [entry["message_id"] for entry in pending]
            if not ids:
                return
            await _within(
                self._client.xclaim(self.stream, self.group, self.consumer, 0, ids, idle=_RELEASED_IDLE_MS, justid=True)
            )
            if len(ids) < _PAGE:
                return
            last = ids[-1]
            start = b"(" + last if isinstance(last, bytes) else f"({last}"


def open_redis_sink(url: str) -> RedisSink:
    """Open `redis://HOST:PORT/STREAM[?maxlen=N&wait_aof=auto|0|1&max_record_bytes=N&db=N]` for writing."""
    return RedisSink(parse_url(url))


def open_redis_source(url: str, group: str) -> RedisSource:
    """Open `redis://HOST:PORT/STREAM[?claim_idle_s=S&db=N]` for reading as one consumer of group `group`.

    `member`/`members` are accepted and ignored: the sources of a group share its records natively.
    """
    return RedisSource(parse_url(url), group)
