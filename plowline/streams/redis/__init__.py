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

from plowline.streams.redis.sink import RedisSink, open_redis_sink
from plowline.streams.redis.source import RedisPosition, RedisSource, open_redis_source
from plowline.streams.redis.url import (
    DEFAULT_CLAIM_IDLE_S,
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_PORT,
    RECORD_FIELD,
    Durability,
    RedisUrl,
    WaitAof,
    parse_url,
)

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
