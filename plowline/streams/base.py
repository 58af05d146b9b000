"""Source and Sink: the only way subsystems exchange records.

The delivery contract, which every transport meets and `tests/streams/test_transport_contract.py`
checks against each of them:

* `Sink.write(records)` returns only when every record of the call is durable (on disk and
  fsynced, or acknowledged by the broker). If it raises, none of the records may be assumed
  durable; the caller must not acknowledge its own input. Records of one `Sink` are read back in
  the order they were written.
* `Source.batches()` yields batches in order. Delivery is at least once: a batch that was not
  acked is delivered again to the same consumer group after a restart (a new `Source` for the same
  stream and group). `Source.ack(batch)` commits the batch's position; acking a batch also commits
  every earlier batch of the same source. Call it only after downstream sinks made the batch's
  results durable.
* Consumer groups are independent: each keeps its own position.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read together, and the opaque position that `Source.ack` commits."""

    records: Sequence[bytes]
    position: object


@runtime_checkable
class Sink(Protocol):
    """Where records are written. `write` returns once they are durable."""

    #: The largest record this sink accepts, in bytes (like Kinesis' 1 MB); bigger ones are refused.
    max_record_bytes: int

    async def write(self, records: Sequence[bytes]) -> None:
        """Return only when every record is durable. Raise TransportError if a retry may succeed."""
        ...

    def healthy(self) -> bool:
        """False while the sink cannot currently write (feeds the collector's /sink-health)."""
        ...

    async def close(self) -> None:
        """Flush and release resources. Records written before close are durable."""
        ...


@runtime_checkable
class Source(Protocol):
    """Where records are read from, by one consumer group, at least once."""

    def batches(self, max_records: int = 500, max_wait_s: float = 0.5) -> AsyncIterator[Batch]:
        """Yield batches in order, waiting up to `max_wait_s` to fill one; never an empty batch."""
        ...

    async def ack(self, batch: Batch) -> None:
        """Commit the batch's position (and every earlier one). Only after downstream is durable."""
        ...

    async def close(self) -> None:
        """Release resources. Positions not acked are delivered again to the next Source."""
        ...
