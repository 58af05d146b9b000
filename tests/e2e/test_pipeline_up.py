"""Acceptance: `plowline up` as users run it — collector, enrich and the loaders as one command on a data dir.

The Python tracker's events and a bad request go in over HTTP; the enriched TSV archive and the bad-row archive must
get them (checked field by field against the raw log). SIGTERM to the process group stops everything cleanly
(exit 0, no process left, no part crashed) with nothing lost: every acknowledged event archived exactly once. The
next `plowline up` on the same data dir resumes from the committed positions: new events are added, events that
were in flight at the stop are archived then, and nothing is archived or enriched twice.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from plowline.config import CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV
from plowline.event import FIELD_NAMES, EnrichedEvent
from plowline.payload import CollectorPayload
from plowline.streams.file_log.framing import iter_records
from plowline.streams.file_log.stats import LogStats
from tests.e2e.support import (
    IGLU_CENTRAL,
    UTM,
    PythonTrackerRun,
    assert_campaign,
    assert_enriched_from,
    assert_google_referrer,
    assert_sdk_parses,
    assert_url_parts,
    events_of,
    track_python_events,
    write_acme_iglu,
    write_offline_resolver,
)
from tests.support.collector_process import free_port

pytestmark = pytest.mark.e2e

PAGE_URL = "https://shop.example/spring/{i}?" + "&".join(f"{key}={value}" for key, value in UTM.items())
REFERRER = "https://www.google.com/search?q=spring+sale"
BAD_ROWS = "iglu:com.snowplowanalytics.snowplow.badrows/"
START_TIMEOUT_S = 40.0
ARCHIVE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
# The archive is what this test reads; the other loaders (duckdb by default) have their own tests.
LOADERS_ENV = {"PLOWLINE_STORAGE__LOADERS": '["files"]'}


@dataclass
class PlowlineUp:
    """`plowline up` in its own session, logging to a file; its children run in process groups of their own."""

    data_dir: Path
    iglu: list[Path]
    resolver: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PlowlineUp:
        env = {key: value for key, value in os.environ.items() if key not in (CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV)}
        env.update(LOADERS_ENV)
        argv = [sys.executable, "-m", "plowline", "up", "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--enrich-workers", "1", "--resolver", str(self.resolver)]
        for directory in self.iglu:
            argv += ["--iglu", str(directory)]
        with self.log_path.open("ab") as log:
            # cwd: a directory without plowline.toml, so only the flags configure it.
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.log_path.parent, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"plowline up exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"plowline up's collector did not become healthy in {START_TIMEOUT_S}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM the process group, as Ctrl-C in a terminal would; return the exit code (SIGKILL if it hangs)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"plowline up did not stop within {STOP_TIMEOUT_S}s of SIGTERM:\n{self.log()}") from None
        deadline = time.monotonic() + 5
        while (left := session_members(self.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            self.kill()
            raise AssertionError(f"processes outlived plowline up: {left}\n{self.log()}")
        return code

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for line in session_members(self.process.pid):  # children, if the kernel's SIGTERM did not end them
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def session_members(sid: int) -> list[str]:
    """Live (not zombie) processes of a session, as "pid command" (children have process groups of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, _, rest = text.rpartition(")")
        state, _, _, session = rest.split()[:4]
        if int(session) == sid and state != "Z":
            found.append(f"{stat.parent.name} {command.partition('(')[2]}")
    return found


def read_archive(root: Path, kind: str) -> list[tuple[Path, str]] | None:
    """Every line of `root/kind/date=*/hour=*/part-*` (plain or gzip) with its file; None while a gzip member is
    still being written."""
    lines: list[tuple[Path, str]] = []
    for path in sorted((root / kind).glob("date=*/hour=*/part-*")):
        try:
            data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        except (EOFError, gzip.BadGzipFile, zlib.error):
            return None
        lines += [(path, line) for line in data.decode("utf-8").splitlines() if line]
    return lines


@dataclass
class Archive:
    events: list[tuple[Path, EnrichedEvent]]
    bad_rows: list[dict[str, Any]]

    def counts(self) -> Counter[str]:
        return Counter(str(event.event_id) for _, event in self.events)

    def bad_markers(self) -> Counter[str]:
        """The `aid` of each bad row's raw event: the test's marker for each bad request."""
        markers: Counter[str] = Counter()
        for row in self.bad_rows:
            parameters = row["data"]["payload"]["raw"]["parameters"]
            markers.update(p["value"] for p in parameters if p["name"] == "aid")
        return markers


def load_archive(root: Path) -> Archive | None:
    enriched, bad = read_archive(root, "enriched"), read_archive(root, "bad")
    if enriched is None or bad is None:
        return None
    return Archive([(path, EnrichedEvent.from_tsv(line)) for path, line in enriched], [json.loads(line) for _, line in bad])


def wait_for_archive(root: Path, eids: set[str], markers: set[str], up: PlowlineUp) -> Archive:
    """Poll the archives until they hold every event in `eids` and a bad row for every marker."""
    deadline = time.monotonic() + ARCHIVE_TIMEOUT_S
    while True:
        archive = load_archive(root)
        if archive is not None and eids <= set(archive.counts()) and markers <= set(archive.bad_markers()):
            return archive
        if time.monotonic() >= deadline:
            have = "unreadable" if archive is None else f"{len(archive.events)} events, markers {archive.bad_markers()}"
            raise AssertionError(f"archive incomplete after {ARCHIVE_TIMEOUT_S}s ({have}); wanted {len(eids)} events, "
                                 f"markers {markers}\n{up.log()[-6000:]}")
        time.sleep(0.1)


def track(up: PlowlineUp, count: int, first_index: int = 0) -> PythonTrackerRun:
    """Python tracker events over POST (batches of 3); every one must be acknowledged."""
    run = track_python_events(up.base_url, count, method="post", batch_size=3, page_url=PAGE_URL, referrer=REFERRER,
                              namespace="e2e-up", app_id="plowline-e2e-up", first_index=first_index)
    assert run.failed == [] and run.acknowledged == set(run.tracked)
    return run


def send_bad_request(up: PlowlineUp) -> str:
    """A GET whose event type does not exist: the collector accepts it, enrich must turn it into a bad row."""
    marker = f"bad-{uuid.uuid4().hex[:8]}"
    response = httpx.get(up.base_url + "/i", params={"e": "zz", "aid": marker}, timeout=10)
    assert response.status_code == 200
    return marker


def assert_archived_as_tracked(archive: Archive, data_dir: Path, runs: list[PythonTrackerRun]) -> None:
    """Each archived event is its raw event enriched (field for field), in the hour partition of its collector_tstamp."""
    raw: dict[str, tuple[dict[str, str], CollectorPayload]] = {}
    for record in (CollectorPayload.from_thrift(data) for data in iter_records(data_dir / "streams" / "raw")):
        if record.path == "/com.snowplowanalytics.snowplow/tp2":
            raw.update((event["eid"], (event, record)) for event in events_of(record))
    tracked = {eid: kind_index for run in runs for eid, kind_index in run.tracked.items()}
    for path, event in archive.events:
        eid = str(event.event_id)
        fields, record = raw[eid]
        assert_enriched_from(event, fields, record)
        assert_sdk_parses(event)
        assert event.collector_tstamp is not None
        assert path.parent.parent.name == f"date={event.collector_tstamp:%Y-%m-%d}"
        assert path.parent.name == f"hour={event.collector_tstamp:%H}"
        kind, index = tracked[eid]
        assert (event.app_id, event.name_tracker) == ("plowline-e2e-up", "e2e-up")
        if kind == "pv":
            url = PAGE_URL.replace("{i}", str(index))
            assert event.page_url == url
            assert_url_parts(event, "page", url)
            assert_google_referrer(event, REFERRER, "spring sale")
            assert_campaign(event, UTM)
        elif kind == "se":
            assert (event.se_category, event.se_action, event.se_label) == ("e2e", f"action-{index}", "label & more")
        else:
            assert (event.event_vendor, event.event_name, event.event_version) == ("com.acme", "e2e_event", "1-0-0")


def assert_positions_committed(data_dir: Path, eids: set[str]) -> None:
    """After a clean stop every consumer group has committed all it consumed, and enrich wrote each event once:
    a restart re-reads nothing."""
    streams = data_dir / "streams"
    event_id = FIELD_NAMES.index("event_id")
    enriched = Counter(line.split(b"\t")[event_id].decode() for line in iter_records(streams / "enriched"))
    assert enriched == Counter(eids), "the enriched stream must hold each event exactly once"
    groups = {stream: sorted(path.name for path in (streams / stream / "_offsets").iterdir())
              for stream in ("raw", "enriched", "bad")}
    assert "enrich" in groups["raw"] and groups["enriched"] and groups["bad"], groups
    for stream, names in groups.items():
        stats = LogStats(streams / stream)
        assert {name: stats.backlog(name) for name in names} == dict.fromkeys(names, 0), stream


def assert_bad_row(archive: Archive, marker: str) -> None:
    [row] = [row for row in archive.bad_rows if marker in json.dumps(row)]
    assert row["schema"] == BAD_ROWS + "schema_violations/jsonschema/2-0-0", row["schema"]
    assert row["data"]["processor"]["artifact"] == "plowline-enrich"
    [message] = row["data"]["failure"]["messages"]
    assert message["schemaKey"] == "iglu:com.snowplowanalytics.snowplow/atomic/jsonschema/1-0-0"
    assert [(r["path"], r["keyword"]) for r in message["error"]["dataReports"]] == [("e", "atomic_field_parse_error")]
    assert {"name": "e", "value": "zz"} in row["data"]["payload"]["raw"]["parameters"]


def stop_cleanly(up: PlowlineUp) -> None:
    code = up.stop()
    assert code == 0, f"plowline up exited with {code} on SIGTERM:\n{up.log()}"
    assert "child exited" not in up.log(), f"a part of the pipeline crashed:\n{up.log()}"


def archive_now(data_dir: Path) -> Archive:
    archive = load_archive(data_dir)
    assert archive is not None, "a stopped pipeline left an incomplete gzip member"
    return archive


def test_plowline_up_archives_every_event_once_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    iglu = [IGLU_CENTRAL, write_acme_iglu(tmp_path / "iglu-acme")]
    resolver = write_offline_resolver(tmp_path / "resolver.json")

    # Run 1: events and a bad request in, both archives filled, then a clean stop with every position committed.
    up = PlowlineUp(data_dir, iglu, resolver, tmp_path / "up-1.log").start()
    try:
        first = track(up, 7)
        first_bad = send_bad_request(up)
        archive = wait_for_archive(data_dir, first.acknowledged, {first_bad}, up)
        assert_archived_as_tracked(archive, data_dir, [first])
        assert_bad_row(archive, first_bad)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    archive = archive_now(data_dir)
    assert archive.counts() == Counter(first.acknowledged), "after the stop: every acknowledged event exactly once"
    assert archive.bad_markers() == Counter([first_bad])
    assert_positions_committed(data_dir, first.acknowledged)

    # Run 2 on the same data dir resumes where run 1 stopped: new events are added, nothing is archived again.
    # Its last events are still in flight when SIGTERM comes: acknowledged, but not waited for.
    up = PlowlineUp(data_dir, iglu, resolver, tmp_path / "up-2.log").start()
    try:
        second = track(up, 5, first_index=100)
        second_bad = send_bad_request(up)
        archive = wait_for_archive(data_dir, first.acknowledged | second.acknowledged, {second_bad}, up)
        assert archive.counts() == Counter(first.acknowledged | second.acknowledged), "old + new, each exactly once"
        in_flight = track(up, 4, first_index=200)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    archive = archive_now(data_dir)
    counts = archive.counts()
    assert counts - Counter(in_flight.acknowledged) == Counter(first.acknowledged | second.acknowledged)
    assert all(counts[eid] <= 1 for eid in in_flight.acknowledged), counts
    assert archive.bad_markers() == Counter([first_bad, second_bad])

    # Run 3: whatever was in flight at the stop is archived now, once; no input needed.
    up = PlowlineUp(data_dir, iglu, resolver, tmp_path / "up-3.log").start()
    everything = first.acknowledged | second.acknowledged | in_flight.acknowledged
    try:
        wait_for_archive(data_dir, everything, set(), up)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    archive = archive_now(data_dir)
    assert archive.counts() == Counter(everything), "every acknowledged event exactly once"
    assert archive.bad_markers() == Counter([first_bad, second_bad])
    assert_archived_as_tracked(archive, data_dir, [first, second, in_flight])
    assert_bad_row(archive, second_bad)
    assert_positions_committed(data_dir, everything)
