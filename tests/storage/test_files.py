"""The files loader: gzip members by hour, durable appends, dedupe across restarts and writers, and s3:// (moto)."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from plowline.config import Settings
from plowline.errors import TransportError
from plowline.event import EnrichedEvent
from plowline.storage import open_loader
from plowline.storage.files import FilesLoader, open_files_loader

from .conftest import T0, bad_rows, full_event, minimal_event, tsv


def _paths(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern))


def _lines(root: Path, pattern: str) -> list[bytes]:
    return [line for path in _paths(root, pattern) for line in gzip.decompress(path.read_bytes()).splitlines()]


def _zcat(path: Path) -> list[bytes]:
    return subprocess.run(["zcat", str(path)], capture_output=True, check=True).stdout.splitlines()


def _event_ids(lines: list[bytes]) -> Counter[str]:
    return Counter(EnrichedEvent.from_tsv(line.decode()).event_id or "" for line in lines)


def _at(hour: int, number: int = 0) -> EnrichedEvent:
    return minimal_event(number, collector_tstamp=datetime(2024, 5, 1, hour, 15, tzinfo=UTC))


class Clock:
    """A settable clock for load-time partitions."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- layout and format --------------------------------------------------------------------------


async def test_events_are_partitioned_by_collector_hour_and_bad_rows_by_load_hour(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    enriched = FilesLoader(tmp_path, "enriched", clock=clock)
    bad = FilesLoader(tmp_path, "bad", clock=clock)
    await enriched.write(tsv(_at(8, 1), _at(9, 2), _at(8, 3)))
    await bad.write(bad_rows(2))

    files = [str(path.relative_to(tmp_path)) for path in _paths(tmp_path, "part-*")]
    assert files == [
        f"bad/date=2026-01-02/hour=03/part-{bad.writer_id}.json.gz",
        f"enriched/date=2024-05-01/hour=08/part-{enriched.writer_id}.tsv.gz",
        f"enriched/date=2024-05-01/hour=09/part-{enriched.writer_id}.tsv.gz",
    ]
    assert _event_ids(_lines(tmp_path / "enriched/date=2024-05-01/hour=08", "*.tsv.gz")) == Counter(
        {_at(8, 1).event_id: 1, _at(8, 3).event_id: 1}
    )


async def test_each_write_appends_a_complete_gzip_member_that_every_reader_reads(tmp_path: Path) -> None:
    loader = FilesLoader(tmp_path, "enriched")
    for start in range(0, 30, 10):
        await loader.write(tsv(*(minimal_event(number) for number in range(start, start + 10))))
    [path] = _paths(tmp_path, "*.tsv.gz")
    data = path.read_bytes()

    assert data.count(b"\x1f\x8b\x08") >= 3  # three members, one per write
    assert len(gzip.decompress(data).splitlines()) == 30
    with gzip.open(path, "rb") as stream:
        assert len(stream.read().splitlines()) == 30
    if shutil.which("zcat"):
        assert len(_zcat(path)) == 30
    [(count,)] = duckdb.execute(
        f"SELECT count(*) FROM read_csv('{tmp_path}/enriched/**/*.tsv.gz', delim='\t', header=false, quote='',"
        " escape='', all_varchar=true)"
    ).fetchall()
    assert count == 30


async def test_the_archive_keeps_lines_exactly_as_received(tmp_path: Path) -> None:
    line = full_event().to_tsv().encode()
    await FilesLoader(tmp_path, "enriched").write([line + b"\n"])
    assert _lines(tmp_path / "enriched", "*.tsv.gz") == [line]


async def test_without_gzip_the_files_are_plain_text(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "storage": {"files": {"gzip": False}}})
    loader = open_loader("files", settings, "enriched")
    await loader.write(tsv(minimal_event(1)))
    await loader.write(tsv(minimal_event(1), minimal_event(2)))

    [path] = _paths(tmp_path, "part-*")
    assert path.name.endswith(".tsv")
    assert len(path.read_bytes().splitlines()) == 2


async def test_the_gzip_level_is_the_configured_one(tmp_path: Path) -> None:
    events = tsv(*(minimal_event(n) for n in range(200)))
    sizes = {}
    for level in (1, 9):
        settings = Settings.model_validate(
            {"data_dir": str(tmp_path / str(level)), "storage": {"files": {"gzip_level": level}}})
        loader = open_loader("files", settings, "enriched")
        await loader.write(events)
        [path] = _paths(tmp_path / str(level), "part-*")
        assert sorted(_lines(tmp_path / str(level), "part-*")) == sorted(line.rstrip(b"\n") for line in events)
        sizes[level] = path.stat().st_size
    assert sizes[1] > sizes[9]
    with pytest.raises(ValueError, match="gzip_level"):
        Settings.model_validate({"data_dir": str(tmp_path), "storage": {"files": {"gzip_level": 0}}})


async def test_lines_that_are_not_events_become_loader_parsing_error_bad_rows(tmp_path: Path) -> None:
    def with_column(number: int, index: int, value: bytes) -> bytes:
        columns = minimal_event(number).to_tsv().encode().split(b"\t")
        columns[index] = value
        return b"\t".join(columns)

    # Two events with the same unreadable stamp: each bad row keeps its own line.
    no_timestamp = [with_column(n, 3, b"yesterday") for n in (2, 3)]
    short = b"\t".join(minimal_event(4).to_tsv().encode().split(b"\t")[:-1])
    no_event_id = with_column(5, 6, b"")
    good = tsv(minimal_event(1), minimal_event(6), minimal_event(7))
    loader = FilesLoader(tmp_path, "enriched")
    await loader.write([b"not an event", good[0], *no_timestamp, good[1], short, no_event_id, good[2]])

    assert sorted(_lines(tmp_path / "enriched", "*.tsv.gz")) == sorted(line.rstrip(b"\n") for line in good)
    rows = [orjson.loads(line)["data"] for line in _lines(tmp_path / "bad", "*.json.gz")]
    failures = [row["failure"] for row in rows]
    assert [failure["type"] for failure in failures] == [
        "NotTSV", "RowDecodingError", "RowDecodingError", "FieldNumberMismatch", "RowDecodingError"]
    assert [failure["errors"][0]["key"] for failure in failures[1:3]] == ["collector_tstamp", "collector_tstamp"]
    assert [row["payload"] for row in rows[1:3]] == [line.decode() for line in no_timestamp]
    assert failures[3]["fieldCount"] == 130
    assert failures[4]["errors"][0]["message"] == "event_id is empty"


# --- durability -----------------------------------------------------------------------------------


async def test_a_failed_write_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = FilesLoader(tmp_path, "enriched")
    await loader.write(tsv(minimal_event(1)))
    [path] = _paths(tmp_path, "*.tsv.gz")
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(TransportError):
        await loader.write(tsv(minimal_event(2)))
    assert not loader.healthy()
    monkeypatch.undo()

    assert path.read_bytes() == before
    await loader.write(tsv(minimal_event(2)))
    assert loader.healthy()
    assert len(_lines(tmp_path, "*.tsv.gz")) == 2


# --- dedupe ---------------------------------------------------------------------------------------


async def test_redelivery_after_a_crash_between_data_and_index_is_still_deduplicated(tmp_path: Path) -> None:
    batch = tsv(*(minimal_event(number) for number in range(5)))
    first = FilesLoader(tmp_path, "enriched")
    await first.write(batch[:2])
    await first.write(batch)
    # The crash: the second write's data is durable, its index line never made it.
    [index] = _paths(tmp_path, "_index/*.idx")
    index.write_bytes(index.read_bytes().splitlines(keepends=True)[0])

    restarted = FilesLoader(tmp_path, "enriched")
    await restarted.write(batch + tsv(minimal_event(5)))

    assert _event_ids(_lines(tmp_path, "*.tsv.gz")) == Counter({minimal_event(n).event_id: 1 for n in range(6)})


async def test_a_torn_member_from_a_power_loss_is_ignored_by_the_dedupe_scan(tmp_path: Path) -> None:
    first = FilesLoader(tmp_path, "enriched")
    await first.write(tsv(minimal_event(1)))
    [data] = _paths(tmp_path, "*.tsv.gz")
    torn = gzip.compress(b"\n".join(tsv(minimal_event(2))) + b"\n")
    with data.open("ab") as handle:
        handle.write(torn[: len(torn) // 2])

    await FilesLoader(tmp_path, "enriched").write(tsv(minimal_event(1), minimal_event(2)))
    good = [path for path in _paths(tmp_path, "*.tsv.gz") if path != data]
    assert _event_ids([line for path in good for line in gzip.decompress(path.read_bytes()).splitlines()]) == Counter(
        {minimal_event(2).event_id: 1}
    )


async def test_a_writer_sees_what_another_writer_stored_since_its_last_write(tmp_path: Path) -> None:
    one, other = FilesLoader(tmp_path, "enriched"), FilesLoader(tmp_path, "enriched")
    await one.write(tsv(minimal_event(1)))
    await other.write(tsv(minimal_event(2)))  # `other` now holds the partition's keys in memory
    await one.write(tsv(minimal_event(3)))
    await other.write(tsv(minimal_event(1), minimal_event(3), minimal_event(4)))  # one's batch, redelivered

    assert _event_ids(_lines(tmp_path, "*.tsv.gz")) == Counter({minimal_event(n).event_id: 1 for n in (1, 2, 3, 4)})


async def test_a_late_redelivery_into_a_partition_no_longer_in_memory_is_deduplicated(tmp_path: Path) -> None:
    loader = FilesLoader(tmp_path, "enriched")
    for hour in range(12):
        await loader.write(tsv(_at(hour, hour)))
    await loader.write(tsv(_at(0, 0), _at(1, 1)))

    assert len(_lines(tmp_path, "*.tsv.gz")) == 12


async def test_bad_rows_are_deduplicated_across_the_hour_boundary_but_not_beyond(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 1, 2, 3, 59, tzinfo=UTC))
    loader = FilesLoader(tmp_path, "bad", clock=clock)
    await loader.write(bad_rows(2))
    clock.now += timedelta(minutes=2)
    await FilesLoader(tmp_path, "bad", clock=clock).write(bad_rows(3))  # a restart in the next hour
    assert len(_lines(tmp_path, "*.json.gz")) == 3

    clock.now += timedelta(hours=2)  # beyond the documented window: stored again
    await loader.write(bad_rows(1))
    assert len(_lines(tmp_path, "*.json.gz")) == 4


# --- s3:// through a local S3-compatible server (moto) --------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for this module's tests; stopped after them."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start on port {port}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    return {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}


@pytest.fixture
def bucket(s3_options: dict[str, Any], request: pytest.FixtureRequest) -> str:
    import s3fs

    name = f"plowline-{abs(hash(request.node.nodeid)) % 10**8}-{time.monotonic_ns() % 10**6}"
    s3fs.S3FileSystem(**s3_options).mkdir(name)
    return name


def _s3_objects(options: dict[str, Any], bucket: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    return {name[len(bucket) + 1 :]: fs.cat_file(name) for name in fs.find(bucket)}


async def test_s3_each_write_uploads_new_immutable_objects(s3_options: dict[str, Any], bucket: str) -> None:
    settings = Settings.model_validate(
        {"storage": {"files": {"path": f"s3://{bucket}/archive", "storage_options": s3_options}}}
    )
    loader = open_files_loader(settings, "enriched")
    await loader.write(tsv(_at(8, 1), _at(9, 2)))
    await loader.write(tsv(_at(8, 3)))
    await open_files_loader(settings, "bad").write(bad_rows(2))

    objects = _s3_objects(s3_options, bucket)
    writer = loader.writer_id
    hour8 = "archive/enriched/date=2024-05-01/hour=08"
    assert {name for name in objects if name.startswith(hour8)} == {
        f"{hour8}/part-{writer}-00000001.tsv.gz", f"{hour8}/_index/{writer}-00000001.idx",
        f"{hour8}/part-{writer}-00000003.tsv.gz", f"{hour8}/_index/{writer}-00000003.idx",
    }
    events = [line for name, data in objects.items() if name.endswith(".tsv.gz")
              for line in gzip.decompress(data).splitlines()]
    assert _event_ids(events) == Counter({_at(8, n).event_id: 1 for n in (1, 2, 3)})
    bad = [line for name, data in objects.items() if name.endswith(".json.gz")
           for line in gzip.decompress(data).splitlines()]
    assert sorted(bad) == sorted(bad_rows(2))


async def test_s3_redelivery_to_a_new_loader_leaves_no_duplicates(s3_options: dict[str, Any], bucket: str) -> None:
    root = f"s3://{bucket}/archive"
    batch = tsv(*(minimal_event(number) for number in range(4)))
    await FilesLoader(root, "enriched", storage_options=s3_options).write(batch)
    # A writer that died between its data object and its index object:
    dying = FilesLoader(root, "enriched", storage_options=s3_options)
    await dying.write(tsv(minimal_event(4)))
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    [index] = [name for name in fs.find(bucket) if f"/_index/{dying.writer_id}-" in name]
    fs.rm(index)

    await FilesLoader(root, "enriched", storage_options=s3_options).write(batch + tsv(minimal_event(4), minimal_event(5)))

    events = [line for name, data in _s3_objects(s3_options, bucket).items() if name.endswith(".tsv.gz")
              for line in gzip.decompress(data).splitlines()]
    assert _event_ids(events) == Counter({minimal_event(n).event_id: 1 for n in range(6)})


async def test_s3_unreachable_raises_transport_error(tmp_path: Path) -> None:
    options = {"endpoint_url": f"http://127.0.0.1:{_free_port()}", "key": "testing", "secret": "testing",
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
    loader = FilesLoader("s3://nowhere/archive", "enriched", storage_options=options)
    with pytest.raises(TransportError):
        await loader.write(tsv(minimal_event(1, collector_tstamp=T0)))
    assert not loader.healthy()
