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

from plowline.streams.nats.sink import NatsSink, open_nats_sink
from plowline.streams.nats.source import NatsPosition, NatsSource, open_nats_source
from plowline.streams.nats.url import (
    DEFAULT_ACK_WAIT_S,
    DEFAULT_MAX_ACK_PENDING,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    NatsUrl,
    parse_url,
)

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
