"""The Loader protocol: a Sink of enriched TSV lines or bad-row JSON lines that stores them for good.

Contract (checked for every loader by `tests/storage/test_loader_contract.py`):
* `write(records)` returns only when the records are durably stored (committed, fsynced, uploaded).
* Redelivery is harmless: an enriched event already stored with the same (event_id,
  event_fingerprint) is not stored again; a bad row identical to one already stored is not stored
  again. Delivery upstream is at least once, so this is what makes storage exactly once.
* Every one of the 131 fields round-trips with its type (where the store is typed).
* A loader raises TransportError (transient: the batch will be retried) when its store is down,
  and never acknowledges what it did not store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol

Kind = Literal["enriched", "bad"]


class Loader(Protocol):
    """A store of one kind of record: enriched events or bad rows."""

    name: ClassVar[str]  # "files", "parquet", "duckdb", "postgres"
    kind: Kind
    max_record_bytes: int

    async def write(self, records: Sequence[bytes]) -> None:
        """Store the records durably, skipping ones already stored. Raise TransportError if the store is down."""
        ...

    def healthy(self) -> bool:
        """False while the store cannot be written."""
        ...

    async def close(self) -> None:
        """Release connections and files; everything written before is stored."""
        ...
