"""RedisSource: one consumer of a Redis consumer group, claiming what crashed consumers left pending."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError, ResponseError
from redis.typing import StreamIdT

from plowline.errors import ConfigError
from plowline.streams.base import Batch
from plowline.streams.redis.calls import _instance_name, _translate, _within
from plowline.streams.redis.url import RECORD_FIELD, RedisUrl, parse_url

_log = structlog.get_logger(__name__)

_MAX_BLOCK_S = 2.0  # a reader wakes at least this often, to claim, clean up and notice close()
_RELEASED_IDLE_MS = 10 * 365 * 86_400 * 1_000  # "idle for ten years": claimable by any claim_idle_s
_PAGE = 1_000


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
    """One consumer of a Redis consumer group, at least once; see the package docstring for the details.

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


def open_redis_source(url: str, group: str) -> RedisSource:
    """Open `redis://HOST:PORT/STREAM[?claim_idle_s=S&db=N]` for reading as one consumer of group `group`.

    `member`/`members` are accepted and ignored: the sources of a group share its records natively.
    """
    return RedisSource(parse_url(url), group)
