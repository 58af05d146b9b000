"""Acceptance: `plowline replay` and `plowline recover` on the data a real `plowline up` collected.

Replay: the Python tracker's events and a bad request go through `plowline up`; replaying the raw archive into
fresh enriched and bad streams gives back the same events, every one of the 131 fields equal but etl_tstamp, and
the same bad row; --since is inclusive and --until exclusive, to the millisecond of the collector's timestamp; a
range with nothing in it replays nothing.

Recovery: self-describing events whose schema no repository has become schema_violations bad rows in the bad
archive; once the schema is in a local Iglu directory, `plowline recover DATA_DIR/bad --type schema_violations`
turns them into good events, as if the schema had been there from the start; the loaders then hold each exactly
once, even when recovery runs twice; inputs that are still wrong stay bad, and other bad-row types are left alone.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from snowplow_tracker import Emitter, PageView, SelfDescribing, SelfDescribingJson, Tracker

from plowline.config import load_config
from plowline.enrich.service import build_pipeline
from plowline.event import FIELD_NAMES, EnrichedEvent
from plowline.payload import CollectorPayload
from plowline.streams.file_log import iter_records
from tests.e2e.support import (
    IGLU_CENTRAL,
    events_of,
    track_python_events,
    write_acme_iglu,
    write_offline_resolver,
)
from tests.support.collector_process import free_port
from tests.support.plowline_cli import PlowlineProcess, collector_healthy, run_plowline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BAD_ROWS = "iglu:com.snowplowanalytics.snowplow.badrows/"
EVENT_ID = FIELD_NAMES.index("event_id")
ETL_TSTAMP = FIELD_NAMES.index("etl_tstamp")
WAIT_S = 60.0
FILES_ONLY = {"PLOWLINE_STORAGE__LOADERS": '["files"]'}
PROMO_SCHEMA = "iglu:com.acme/promo_click/jsonschema/1-0-0"


# --- helpers -------------------------------------------------------------------------------------------------------


class Pipeline:
    """`plowline up` (files loader only, offline Iglu: Iglu Central's snapshot and the com.acme test schemas)."""

    def __init__(self, tmp_path: Path, data_dir: Path) -> None:
        self.tmp_path, self.data_dir = tmp_path, data_dir
        self.resolver = write_offline_resolver(tmp_path / "resolver.json")
        self.iglu = [IGLU_CENTRAL, write_acme_iglu(tmp_path / "iglu-acme")]
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.runs = 0

    def iglu_args(self, *extra: Path) -> list[str]:
        args = ["--resolver", str(self.resolver)]
        for directory in [*self.iglu, *extra]:
            args += ["--iglu", str(directory)]
        return args

    def up(self) -> PlowlineProcess:
        self.runs += 1
        args = ["up", "--data-dir", str(self.data_dir), "--port", str(self.port), "--enrich-workers", "1",
                *self.iglu_args()]
        return PlowlineProcess(args, self.tmp_path, self.tmp_path / f"up-{self.runs}.log", dict(FILES_ONLY)).start(
            collector_healthy(self.base_url))


def stop_cleanly(process: PlowlineProcess) -> None:
    code = process.stop()
    assert code == 0, f"plowline up exited with {code}:\n{process.log()}"
    assert "child exited" not in process.log(), f"a part of the pipeline crashed:\n{process.log()}"


def stream_lines(directory: Path) -> list[str]:
    """The records of a file-log stream (enriched TSV lines or bad-row JSON), in order; [] if it does not exist."""
    return [record.decode("utf-8") for record in iter_records(directory)] if directory.exists() else []


def events_by_id(lines: list[str]) -> dict[str, list[str]]:
    """TSV lines split into their 131 columns, keyed by event_id; an event_id twice fails."""
    found: dict[str, list[str]] = {}
    for line in lines:
        columns = line.split("\t")
        assert len(columns) == len(FIELD_NAMES), f"{len(columns)} columns"
        assert columns[EVENT_ID] not in found, f"event {columns[EVENT_ID]} twice"
        found[columns[EVENT_ID]] = columns
    return found


def bad_kind(row: dict[str, Any]) -> str:
    return str(row["schema"]).removeprefix(BAD_ROWS).split("/")[0]


def comparable_bad_row(row: dict[str, Any]) -> dict[str, Any]:
    """A bad row without the moments it was made: the failure's timestamp and the partial event's etl_tstamp."""
    copy = json.loads(json.dumps(row))
    del copy["data"]["failure"]["timestamp"]
    del copy["data"]["payload"]["enriched"]["etl_tstamp"]
    return dict(copy)


def iso_ms(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def send_bad_request(base_url: str) -> str:
    """A GET whose event type does not exist: accepted by the collector, a schema_violations bad row in enrich."""
    marker = f"bad-{uuid.uuid4().hex[:8]}"
    assert httpx.get(base_url + "/i", params={"e": "zz", "aid": marker}, timeout=10).status_code == 200
    return marker


def wait_for(condition: Any, what: str, process: PlowlineProcess, timeout_s: float = WAIT_S) -> None:
    process.wait_until(condition, timeout_s, what)


def replay(tmp_path: Path, pipeline: Pipeline, name: str, since: str, until: str) -> tuple[Path, str]:
    """`plowline replay --since --until` into fresh enriched and bad streams; (their directory, stderr)."""
    out = tmp_path / name
    env = {"PLOWLINE_STREAMS__ENRICHED": f"file://{out / 'enriched'}", "PLOWLINE_STREAMS__BAD": f"file://{out / 'bad'}"}
    result = run_plowline(["replay", "--data-dir", str(pipeline.data_dir), "--since", since, "--until", until,
                           *pipeline.iglu_args()], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return out, result.stderr


def summary(stderr: str, verb: str) -> tuple[int, ...]:
    pattern = {"replayed": r"replayed (\d+) raw records: (\d+) good events, (\d+) bad rows",
               "recovered": r"recovered (\d+) inputs: (\d+) good events, (\d+) still bad"}[verb]
    found = re.findall(pattern, " ".join(stderr.split()))
    assert len(found) == 1, f"no single summary line on stderr:\n{stderr}"
    return tuple(int(n) for n in found[0])


# --- replay --------------------------------------------------------------------------------------------------------


def test_replay_re_enriches_the_raw_archive_into_the_same_events(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, tmp_path / "data")
    streams = pipeline.data_dir / "streams"
    up = pipeline.up()
    try:
        first = track_python_events(pipeline.base_url, 6, batch_size=3, namespace="replay", app_id="replay-a")
        marker = send_bad_request(pipeline.base_url)
        assert first.failed == [] and first.acknowledged == set(first.tracked)
        time.sleep(0.01)  # the second run's records are stamped strictly later than the first run's
        second = track_python_events(pipeline.base_url, 4, batch_size=2, namespace="replay", app_id="replay-b",
                                     first_index=100)
        assert second.failed == [] and second.acknowledged == set(second.tracked)
        eids = first.acknowledged | second.acknowledged
        wait_for(lambda: set(events_by_id(stream_lines(streams / "enriched"))) >= eids
                 and len(stream_lines(streams / "bad")) >= 1, "done enriching", up)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    up.kill()

    original = events_by_id(stream_lines(streams / "enriched"))
    assert set(original) == eids
    [original_bad] = [json.loads(line) for line in stream_lines(streams / "bad")]
    assert bad_kind(original_bad) == "schema_violations" and marker in json.dumps(original_bad)

    # The raw archive: 2 + 1 POST records of the first run (batches of 3) and its bad GET, then 2 of the second.
    raw = [CollectorPayload.from_thrift(record) for record in iter_records(streams / "raw")]
    assert len(raw) == 5
    in_second = [any(event.get("eid") in second.acknowledged for event in events_of(record)) for record in raw]
    assert in_second == [False, False, False, True, True]
    stamps = [record.timestamp for record in raw]
    boundary = min(stamps[3:])  # the first record of the second run
    assert max(stamps[:3]) < boundary
    since, boundary_iso, until = iso_ms(min(stamps)), iso_ms(boundary), iso_ms(max(stamps) + 1)

    # Everything: the same events and the same bad row, into streams of their own.
    out, stderr = replay(tmp_path, pipeline, "replay-all", since, until)
    assert summary(stderr, "replayed") == (5, 10, 1)
    assert "replaying raw archive" in stderr and "5/5" in stderr, stderr
    replayed = events_by_id(stream_lines(out / "enriched"))
    assert set(replayed) == eids
    for eid, columns in original.items():
        again = replayed[eid]
        differ = [name for name, a, b in zip(FIELD_NAMES, columns, again, strict=True) if a != b]
        assert set(differ) <= {"etl_tstamp"}, (eid, differ)
        assert again[ETL_TSTAMP] >= columns[ETL_TSTAMP] != ""
    [replayed_bad] = [json.loads(line) for line in stream_lines(out / "bad")]
    assert bad_kind(replayed_bad) == "schema_violations"
    assert comparable_bad_row(replayed_bad) == comparable_bad_row(original_bad)
    # Replay reads the archive and writes elsewhere: the pipeline's own streams are as they were.
    assert events_by_id(stream_lines(streams / "enriched")) == original
    assert len(stream_lines(streams / "bad")) == 1

    # --until is exclusive: the first run and its bad request only.
    out, stderr = replay(tmp_path, pipeline, "replay-first", since, boundary_iso)
    assert summary(stderr, "replayed") == (3, 6, 1)
    assert set(events_by_id(stream_lines(out / "enriched"))) == first.acknowledged
    assert len(stream_lines(out / "bad")) == 1

    # --since is inclusive: the second run only.
    out, stderr = replay(tmp_path, pipeline, "replay-second", boundary_iso, until)
    assert summary(stderr, "replayed") == (2, 4, 0)
    assert {eid: columns[:ETL_TSTAMP] for eid, columns in events_by_id(stream_lines(out / "enriched")).items()} == {
        eid: columns[:ETL_TSTAMP] for eid, columns in original.items() if eid in second.acknowledged}
    assert stream_lines(out / "bad") == []

    # A range with nothing in it (before the first record) replays nothing.
    out, stderr = replay(tmp_path, pipeline, "replay-none", "2020-01-01T00:00:00Z", since)
    assert summary(stderr, "replayed") == (0, 0, 0)
    assert stream_lines(out / "enriched") == [] and stream_lines(out / "bad") == []


# --- recovery ------------------------------------------------------------------------------------------------------

PROMO_SCHEMA_JSON = {
    "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
    "self": {"vendor": "com.acme", "name": "promo_click", "format": "jsonschema", "version": "1-0-0"},
    "type": "object",
    "properties": {"promo": {"type": "string"}, "slot": {"type": "integer", "minimum": 0}},
    "required": ["promo", "slot"],
    "additionalProperties": False,
}


def write_promo_schema(root: Path) -> Path:
    path = root / "schemas" / "com.acme" / "promo_click" / "jsonschema" / "1-0-0"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(PROMO_SCHEMA_JSON))
    return root


def track_promos(base_url: str, promos: list[dict[str, Any]], page_views: int) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Self-describing promo_click events (a schema no repository has yet) and some page views, with the Python
    tracker over POST; ({eid: promo data}, page view eids). Every request must be acknowledged."""
    sent: list[dict[str, Any]] = []
    failed: list[Any] = []
    session = requests.Session()
    emitter = Emitter(base_url, method="post", batch_size=3, on_success=sent.extend,
                      on_failure=lambda ok, events: failed.append(events), request_timeout=10, session=session)
    tracker = Tracker("recover", emitter, app_id="recover-e2e")
    promo_ids: dict[str, dict[str, Any]] = {}
    views: set[str] = set()
    for index, promo in enumerate(promos):
        eid = tracker.track(SelfDescribing(SelfDescribingJson(PROMO_SCHEMA, promo)))
        assert eid is not None
        promo_ids[eid] = promo
        if index < page_views:
            view = tracker.track(PageView(page_url=f"https://shop.example/promo/{index}", page_title="Promo"))
            assert view is not None
            views.add(view)
    tracker.flush()
    session.close()
    assert failed == [] and {str(p["eid"]) for p in sent} == set(promo_ids) | views
    return promo_ids, views


def read_archive(data_dir: Path, kind: str) -> list[str] | None:
    """Every line of the files loader's archive DATA_DIR/{enriched,bad}/date=*/hour=*/part-*.gz; None mid-write."""
    lines: list[str] = []
    for path in sorted((data_dir / kind).glob("date=*/hour=*/part-*")):
        try:
            lines += gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        except (EOFError, gzip.BadGzipFile, OSError):
            return None
    return [line for line in lines if line]


def archived_ids(data_dir: Path) -> Counter[str]:
    return Counter(line.split("\t")[EVENT_ID] for line in read_archive(data_dir, "enriched") or [])


def archived_bad_kinds(data_dir: Path) -> Counter[str]:
    return Counter(bad_kind(json.loads(line)) for line in read_archive(data_dir, "bad") or [])


def test_recover_turns_fixed_schema_violations_into_good_events_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pipeline = Pipeline(tmp_path, data_dir)
    good_promos = [{"promo": f"spring-{n}", "slot": n} for n in range(4)]
    wrong_promo = {"promo": "broken", "slot": -1}  # valid JSON, but not for the schema that will be added
    up = pipeline.up()
    try:
        promos, views = track_promos(pipeline.base_url, [*good_promos, wrong_promo], page_views=2)
        marker = send_bad_request(pipeline.base_url)  # schema_violations that no schema fixes
        assert httpx.get(pipeline.base_url + "/com.acme/v1", params={"promo": "x"}, timeout=10).status_code == 200
        wait_for(lambda: set(archived_ids(data_dir)) >= views
                 and archived_bad_kinds(data_dir) == Counter(schema_violations=len(promos) + 1, adapter_failures=1),
                 "archiving the bad rows", up)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    up.kill()
    assert archived_ids(data_dir) == Counter(views)
    promo_rows = [json.loads(line) for line in read_archive(data_dir, "bad") or [] if PROMO_SCHEMA in line]
    assert len(promo_rows) == len(promos)
    for row in promo_rows:  # missing schema: the resolver looked and did not find it
        assert row["data"]["failure"]["messages"][0]["error"]["error"] == "ResolutionError", row
    good_ids = {eid for eid, promo in promos.items() if promo != wrong_promo}
    [wrong_id] = set(promos) - good_ids

    # What enrich makes of the same raw records once the schema exists: what recovery must give.
    fixed = write_promo_schema(tmp_path / "iglu-fixed")
    settings = load_config(overrides={"data_dir": str(tmp_path / "unused"), "enrich": {
        "iglu": [str(p) for p in [*pipeline.iglu, fixed]], "resolver": str(pipeline.resolver)}})
    enrich = build_pipeline(settings)
    expected: dict[str, EnrichedEvent] = {}
    for record in iter_records(data_dir / "streams" / "raw"):
        outcome = enrich.process(record, datetime.now(UTC))
        expected.update((str(event.event_id), event) for event in outcome.good if str(event.event_id) in good_ids)
    assert set(expected) == good_ids

    bad_dir = data_dir / "bad"  # the files loader's bad-row archive, as a user finds it
    recover = ["recover", str(bad_dir), "--data-dir", str(data_dir), "--type", "schema_violations",
               *pipeline.iglu_args(fixed)]
    bad_before = set(stream_lines(data_dir / "streams" / "bad"))
    assert len(bad_before) == 7
    result = run_plowline(recover, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # 5 promo rows and the bad GET are schema_violations; the adapter failure is not picked.
    assert summary(result.stderr, "recovered") == (6, 4, 2)
    assert "recovering bad rows" in result.stderr and "6/6" in result.stderr, result.stderr

    # Into the pipeline's own streams: the recovered events after the page views, the still-bad inputs as new rows.
    enriched = stream_lines(data_dir / "streams" / "enriched")
    assert Counter(line.split("\t")[EVENT_ID] for line in enriched) == Counter(views | good_ids)
    for line in enriched:
        event = EnrichedEvent.from_tsv(line)
        eid = str(event.event_id)
        if eid in good_ids:
            assert event.event == "unstruct"
            assert event.unstruct_event == {"schema": PROMO_SCHEMA, "data": promos[eid]}
            assert (event.event_vendor, event.event_name, event.event_format, event.event_version) == (
                "com.acme", "promo_click", "jsonschema", "1-0-0")
            mine, theirs = line.split("\t"), expected[eid].to_tsv().split("\t")
            differ = [name for name, a, b in zip(FIELD_NAMES, mine, theirs, strict=True) if a != b]
            assert set(differ) <= {"etl_tstamp"}, (eid, differ)
    new_bad = [json.loads(line) for line in stream_lines(data_dir / "streams" / "bad") if line not in bad_before]
    assert len(new_bad) == 2
    assert sorted(bad_kind(row) for row in new_bad) == ["schema_violations", "schema_violations"]
    still_bad = {row["data"]["payload"]["enriched"]["event_id"] for row in new_bad}
    assert wrong_id in still_bad, new_bad
    assert any(marker in json.dumps(row) for row in new_bad)
    [wrong_row] = [row for row in new_bad if row["data"]["payload"]["enriched"]["event_id"] == wrong_id]
    assert wrong_row["data"]["failure"]["messages"][0]["error"]["error"] == "ValidationError", wrong_row

    # Recovery again, then the loaders: every event exactly once; the adapter failure was never re-enriched.
    result = run_plowline(recover, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary(result.stderr, "recovered") == (6, 4, 2)
    up = pipeline.up()
    try:
        wait_for(lambda: set(archived_ids(data_dir)) >= views | good_ids
                 and sum(archived_bad_kinds(data_dir).values()) >= 7 + 2 + 2, "archiving the recovered events", up)
    except BaseException:
        up.kill()
        raise
    stop_cleanly(up)
    up.kill()
    assert archived_ids(data_dir) == Counter(views | good_ids)
    # The 7 first bad rows, then the 2 still-bad inputs of each recovery (new rows: each has its own failure time).
    assert archived_bad_kinds(data_dir) == Counter(schema_violations=6 + 2 + 2, adapter_failures=1)

