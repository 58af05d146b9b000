"""The `files` loader: enriched TSV and bad-row JSON lines as gzip files partitioned by hour, local or s3://.

Layout (Hive-style, so DuckDB, Spark and pandas read it directly; names starting with `_` or `.`
are ignored by those readers):

    ROOT/enriched/date=YYYY-MM-DD/hour=HH/part-<writer>.tsv.gz    by the event's collector_tstamp (UTC)
    ROOT/bad/date=YYYY-MM-DD/hour=HH/part-<writer>.json.gz        by the time the bad row was loaded
    <partition>/_index/<writer>.idx                                the dedupe index (see below)

`<writer>` is a random id per opened loader. Each `write` appends ONE complete gzip member per
partition it touches, so a file is always a valid multi-member gzip stream (zcat, Python's gzip,
DuckDB's read_csv all read the members as one stream) and never needs rewriting. Durability: on a
local disk the member is written and fsynced (and every new directory's parent fsynced) before
`write` returns; an error midway truncates the file back to where the write started. On s3:// (or
any fsspec URL), objects are immutable: each write uploads a new object per partition,
`part-<writer>-<seq>.tsv.gz` (seq counts up per writer), and returns once the store acknowledged it.
With `storage.files.gzip = false` the files are plain `.tsv` / `.json` with the same layout;
`storage.files.gzip_level` (default 6) trades the CPU of compressing against the files' size.

Dedupe (redelivery is harmless). The key of an enriched event is (event_id, event_fingerprint), of
a bad row its bytes; each key is held as a 16-byte BLAKE2b digest. Every write appends to its
writer's index in the partition one line `<data file size after the write> <hex digest>,…`, after
the data is durable (local), or uploads `_index/<writer>-<seq>.idx` after the data object (s3).
Before writing into a partition the loader brings its in-memory key set for that partition up to
date: on first touch it reads every writer's index, later only what was appended or uploaded
since; data not yet covered by an index (a writer that died between its data and its index write)
is read back and its keys taken from the lines themselves. Records whose key is in the set (or
earlier in the same batch) are skipped. Guarantees that follow:

* Enriched events: exact, for any redelivery however late, across restarts and across writers,
  because an event always lands in the same partition (its collector_tstamp hour) and that
  partition's index plus any uncovered data tail hold every key stored there. The one exception
  is the same event written at the same moment by two writers (a transport that hands an unacked
  batch to a second consumer while the first is still writing it): both may store it. Keys are
  per partition: the same event collected twice in different hours (a tracker retrying an hour
  later, same event_id and fingerprint) is archived twice, as it arrived; the warehouses (duckdb,
  postgres) key on the pair alone and keep one.
* Bad rows are partitioned by load time, so a redelivery is recognised when it is loaded in the
  same or the next UTC hour as the first delivery (the current and previous hour are checked);
  one redelivered later than that is stored again.
* Memory: the key sets of the 8 most recently used partitions are kept (about 80 bytes per key);
  an older partition is read back from its index when a late event reaches it.

Enriched lines that are not events (wrong column count, collector_tstamp that does not parse, no
event_id) are stored as `loader_parsing_error` bad rows under ROOT/bad, so nothing is lost. The
lines themselves are otherwise kept as received: this is the archive the analytics SDKs read.
"""

from __future__ import annotations

import gzip
import re
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from plowline.config import Settings
from plowline.errors import ConfigError
from plowline.event import FIELD_NAMES
from plowline.event_format import parse_timestamp
from plowline.observability import get_logger
from plowline.storage.base import Kind
from plowline.storage.file_store import (
    FileStore,
    KeyDigest,
    StoreLoader,
    digest,
    enriched_key,
)
from plowline.storage.rows import EVENT_FINGERPRINT, EVENT_ID, loader_parsing_error, unhandled_failure

__all__ = ["FilesLoader", "open_files_loader"]

log = get_logger("storage.files")


_COLLECTOR_TSTAMP = FIELD_NAMES.index("collector_tstamp")
_TABS = len(FIELD_NAMES) - 1
_CACHED_PARTITIONS = 8
_INDEX_DIR = "_index"


# Only 3 of the 131 columns are needed to file a line: it is split at the first tabs and at the
# last ones, not into 131 pieces (a third of the loader's CPU per line went to that split).
_HEAD_SPLITS = max(_COLLECTOR_TSTAMP, EVENT_ID) + 1
_TAIL_SPLITS = _TABS - EVENT_FINGERPRINT + 1
assert _HEAD_SPLITS + _TAIL_SPLITS <= _TABS, "the head and tail columns must not overlap"


def _event_key(line: bytes, event_id: bytes) -> KeyDigest:
    """The dedupe key of an enriched line of 131 columns whose event_id is `event_id`."""
    return enriched_key(event_id, line.rsplit(b"\t", _TAIL_SPLITS)[1])


def _line_key(kind: Kind, line: bytes) -> KeyDigest:
    if kind == "bad":
        return digest(line)
    return _event_key(line, line.split(b"\t", _HEAD_SPLITS)[EVENT_ID])


@dataclass(slots=True)
class _PartitionKeys:
    """What one partition is known to hold, and how much of its files has been read to know it."""

    keys: set[KeyDigest] = field(default_factory=set)
    index_read: dict[str, int] = field(default_factory=dict)  # index file → bytes consumed
    covered: dict[str, int] = field(default_factory=dict)  # data file → bytes whose keys are known


def _parse_index(text: bytes) -> tuple[int, list[KeyDigest]]:
    """One index line `<data size> <hex>,<hex>,…` → (data size, digests)."""
    size, _, hexes = text.partition(b" ")
    return int(size), [bytes.fromhex(item.decode()) for item in hexes.split(b",") if item]


def _complete_members(data: bytes) -> tuple[bytes, int]:
    """The decompressed content of the complete gzip members at the start of `data`, and their length."""
    out: list[bytes] = []
    view = memoryview(data)
    position = 0
    while position < len(data):
        decompressor = zlib.decompressobj(wbits=31)
        try:
            chunk = decompressor.decompress(view[position:])
        except zlib.error:
            break
        if not decompressor.eof:  # a torn member: it was never acknowledged
            break
        out.append(chunk)
        position = len(data) - len(decompressor.unused_data)
    return b"".join(out), position


# --- the loader -------------------------------------------------------------------------------------

class FilesLoader(StoreLoader[_PartitionKeys]):
    """A Loader into hourly gzip files for one kind of record; see the module docstring."""

    name: ClassVar[str] = "files"
    max_record_bytes: int = 10_000_000

    def __init__(
        self,
        root: str | Path,
        kind: Kind,
        *,
        compress: bool = True,
        gzip_level: int = 6,
        storage_options: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if kind not in ("enriched", "bad"):
            raise ValueError(f"kind must be 'enriched' or 'bad', not {kind!r}")
        super().__init__()
        self.kind: Kind = kind
        self.store = FileStore(str(root), storage_options)
        self.compress = compress
        if not 1 <= gzip_level <= 9:
            raise ValueError(f"gzip_level must be 1 to 9, not {gzip_level}")
        self.gzip_level = gzip_level
        self.writer_id = uuid.uuid4().hex[:12]
        self._clock = clock
        self._extension = {"enriched": ".tsv", "bad": ".json"}
        self._gz = ".gz" if compress else ""
        self._sequence = 0
        self._partitions: OrderedDict[str, _PartitionKeys] = OrderedDict()

    # --- writing --------------------------------------------------------------------------------

    def _prepare(self, records: Sequence[bytes]) -> list[bytes]:
        return [record.rstrip(b"\r\n") for record in records]

    def _write(self, lines: list[bytes]) -> None:
        now = self._clock()
        if self.kind == "bad":
            self._write_bad(lines, now)
            return
        groups: dict[str, list[tuple[KeyDigest, bytes]]] = {}
        rejected: list[bytes] = []
        partitions: dict[bytes, str | dict[str, Any]] = {}  # collector_tstamp → its partition, or why it has none
        for line in lines:
            tabs = line.count(b"\t")
            if tabs != _TABS:
                rejected.append(_column_count_problem(line, tabs))
                continue
            head = line.split(b"\t", _HEAD_SPLITS)
            event_id, stamp = head[EVENT_ID], head[_COLLECTOR_TSTAMP]
            if not event_id:
                rejected.append(loader_parsing_error(line, unhandled_failure("event_id is empty")))
                continue
            # The events of one request share their collector_tstamp: each distinct one is parsed once.
            partition = partitions.get(stamp)
            if partition is None:
                partition = partitions[stamp] = _enriched_partition(stamp)
            if isinstance(partition, dict):
                rejected.append(loader_parsing_error(line, partition))
                continue
            groups.setdefault(partition, []).append((_event_key(line, event_id), line))
        for partition, items in groups.items():
            state = self._refresh(partition, "enriched")
            self._store(partition, "enriched", _fresh(items, state.keys), state)
        if rejected:
            log.warning("enriched lines stored as bad rows", root=self.store.url, count=len(rejected))
            self._write_bad(rejected, now)

    def _write_bad(self, lines: list[bytes], now: datetime) -> None:
        partition = _bad_partition(now)
        previous = self._refresh(_bad_partition(now - timedelta(hours=1)), "bad")
        state = self._refresh(partition, "bad")
        fresh = _fresh([(digest(line), line) for line in lines], state.keys, previous.keys)
        self._store(partition, "bad", fresh, state)

    def _store(self, partition: str, kind: Kind, items: list[tuple[KeyDigest, bytes]], state: _PartitionKeys) -> None:
        if not items:
            return
        body = b"".join(line + b"\n" for _, line in items)
        if self.compress:
            body = gzip.compress(body, compresslevel=self.gzip_level, mtime=0)
        keys = ",".join(key.hex() for key, _ in items)
        extension = self._extension[kind] + self._gz
        if self.store.local:
            data_file = f"part-{self.writer_id}{extension}"
            size = self.store.append(f"{partition}/{data_file}", body)
            self.store.append(f"{partition}/{_INDEX_DIR}/{self.writer_id}.idx", f"{size} {keys}\n".encode())
        else:
            self._sequence += 1
            name = f"{self.writer_id}-{self._sequence:08d}"
            data_file, size = f"part-{name}{extension}", len(body)
            index = f"{size} {keys}\n".encode()
            self.store.put(f"{partition}/{data_file}", body)
            self.store.put(f"{partition}/{_INDEX_DIR}/{name}.idx", index)
            state.index_read[f"{_INDEX_DIR}/{name}.idx"] = len(index)
        state.keys.update(key for key, _ in items)
        state.covered[data_file] = size

    # --- dedupe state ---------------------------------------------------------------------------

    def _refresh(self, partition: str, kind: Kind) -> _PartitionKeys:
        """The partition's key set, brought up to date with what every writer stored there."""
        state = self._partitions.pop(partition, None) or _PartitionKeys()
        self._partitions[partition] = state
        while len(self._partitions) > _CACHED_PARTITIONS:
            self._partitions.popitem(last=False)
        files = self.store.sizes(partition)
        extension = self._extension[kind] + self._gz
        for name, size in sorted(files.items()):
            read = state.index_read.get(name, 0)
            if not name.startswith(f"{_INDEX_DIR}/") or not name.endswith(".idx") or size <= read:
                continue
            # An index line says how much of its data file it covers: locally the writer's one
            # appended file, remotely the object of the same name.
            data_file = f"part-{name[len(_INDEX_DIR) + 1 : -len('.idx')]}{extension}"
            chunk = self.store.read(f"{partition}/{name}", read)
            complete = chunk[: chunk.rfind(b"\n") + 1]
            for line in complete.splitlines():
                covered, keys = _parse_index(line)
                state.keys.update(keys)
                state.covered[data_file] = max(state.covered.get(data_file, 0), covered)
            state.index_read[name] = read + len(complete)
        for name, size in files.items():
            if "/" in name or not name.startswith("part-") or size <= state.covered.get(name, 0):
                continue
            self._read_uncovered(partition, name, kind, state)
        return state

    def _read_uncovered(self, partition: str, name: str, kind: Kind, state: _PartitionKeys) -> None:
        """Take the keys of data no index covers (its writer stopped between data and index)."""
        start = state.covered.get(name, 0)
        tail = self.store.read(f"{partition}/{name}", start)
        if name.endswith(".gz"):
            content, used = _complete_members(tail)
        else:
            used = tail.rfind(b"\n") + 1
            content = tail[:used]
        keys = [_line_key(kind, line) for line in content.splitlines() if line]
        state.keys.update(keys)
        state.covered[name] = start + used
        if keys:
            log.info("dedupe keys recovered from unindexed data", file=f"{partition}/{name}", keys=len(keys))


def _fresh(items: Iterable[tuple[KeyDigest, bytes]], *known: set[KeyDigest]) -> list[tuple[KeyDigest, bytes]]:
    """The items whose key is in none of the `known` sets nor earlier in `items`."""
    seen: set[KeyDigest] = set()
    out: list[tuple[KeyDigest, bytes]] = []
    for key, line in items:
        if key in seen or any(key in keys for keys in known):
            continue
        seen.add(key)
        out.append((key, line))
    return out


def _bad_partition(moment: datetime) -> str:
    return f"bad/date={moment:%Y-%m-%d}/hour={moment:%H}"


_TIMESTAMP_TEXT = re.compile(rb"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def _column_count_problem(line: bytes, tabs: int) -> bytes:
    """The loader_parsing_error bad row of a line without 131 tab-separated columns."""
    if tabs == 0:
        return loader_parsing_error(line, {"type": "NotTSV"})
    return loader_parsing_error(line, {"type": "FieldNumberMismatch", "fieldCount": tabs + 1})


def _enriched_partition(stamp: bytes) -> str | dict[str, Any]:
    """The partition of an event collected at `stamp`, or the loader_parsing_error failure of a line
    whose stamp is not a timestamp."""
    try:
        if not _TIMESTAMP_TEXT.match(stamp):
            raise ValueError("not yyyy-MM-dd HH:mm:ss.SSS")
        moment = parse_timestamp(stamp.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        value = stamp.decode("utf-8", errors="replace")
        return {"type": "RowDecodingError", "errors": [
            {"type": "InvalidValue", "key": "collector_tstamp", "value": value, "message": str(exc)}]}
    return f"enriched/date={moment:%Y-%m-%d}/hour={moment:%H}"


def open_files_loader(settings: Settings, kind: Kind) -> FilesLoader:
    """Open the files loader for `kind` at storage.files.path (default DATA_DIR)."""
    config = settings.storage.files
    root = config.path or str(settings.data_dir)
    try:
        return FilesLoader(root, kind, compress=config.gzip, gzip_level=config.gzip_level,
                           storage_options=config.storage_options)
    except (ValueError, ImportError) as exc:
        raise ConfigError("storage.files.path", f"{root!r} cannot be opened: {exc}",
                          "give a local directory or an s3://bucket/prefix URL (with s3fs installed)") from exc
