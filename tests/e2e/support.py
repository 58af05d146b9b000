"""Helpers for the real-tracker tests: read tracker-protocol events back out of raw records."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from snowplow_analytics_sdk.event_transformer import transform as sdk_transform
from snowplow_tracker import Emitter, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Subject, Tracker

from plowline.config import Settings, load_config
from plowline.enrich.pipeline import Pipeline
from plowline.event import FIELD_NAMES, EnrichedEvent
from plowline.payload import CollectorPayload
from plowline.streams.file_log.framing import iter_records
from tests.support.collector_process import CollectorProcess

TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
GET_PATH = "/i"
PAYLOAD_DATA_PREFIX = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-"
CONTEXTS_PREFIX = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-"
UNSTRUCT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"

JS_DIR = Path(__file__).parent / "js"
NODE_MODULES = JS_DIR / "node_modules"
REPO_ROOT = Path(__file__).resolve().parents[2]


def require_js_deps() -> None:
    """The npm packages come from `npm ci` (scripts/install-test-deps.sh); without them the test cannot run."""
    if not (NODE_MODULES / ".package-lock.json").exists():
        raise AssertionError(f"{NODE_MODULES} is missing: run `bash scripts/install-test-deps.sh` (make test does)")
    if shutil.which("node") is None:
        raise AssertionError("node is not on PATH: the Node and browser tracker tests need Node.js >= 20")


def run_node(args: Sequence[str], timeout_s: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `node args...` in tests/e2e/js; kill its whole process group (a browser too) if it hangs."""
    process = subprocess.Popen(
        ["node", *args], cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, **(env or {})},
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"node {' '.join(args)} timed out after {timeout_s}s\nstdout:\n{stdout}\nstderr:\n{stderr}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def events_of(record: CollectorPayload) -> list[dict[str, str]]:
    """The tracker-protocol events one raw record carries: the querystring (GET) or the payload_data array (POST)."""
    if record.body is None:
        assert record.querystring, f"GET record without a querystring: {record}"
        return [dict(parse_qsl(record.querystring, keep_blank_values=True, strict_parsing=True))]
    envelope = json.loads(record.body)
    assert envelope["schema"].startswith(PAYLOAD_DATA_PREFIX), envelope["schema"]
    events = envelope["data"]
    assert isinstance(events, list) and events, f"payload_data.data must be a non-empty array: {record.body}"
    for event in events:
        assert all(isinstance(value, str) for value in event.values()), f"non-string value in {event}"
    return events


def events_by_eid(records: Iterable[CollectorPayload]) -> dict[str, dict[str, str]]:
    """Every event in the records, keyed by its eid; an eid seen twice is a duplicate and fails."""
    found: dict[str, dict[str, str]] = {}
    for record in records:
        for event in events_of(record):
            eid = event["eid"]
            assert eid not in found, f"event {eid} is in the raw log twice"
            found[eid] = event
    return found


def decode_sdj(event: dict[str, str], plain: str, encoded: str) -> Any:
    """The JSON of `co`/`cx` or `ue_pr`/`ue_px`, whichever the tracker used (base64url, padding optional)."""
    if plain in event:
        return json.loads(event[plain])
    text = event[encoded]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def contexts_of(event: dict[str, str]) -> list[dict[str, Any]]:
    wrapper = decode_sdj(event, "co", "cx")
    assert wrapper["schema"].startswith(CONTEXTS_PREFIX), wrapper["schema"]
    return list(wrapper["data"])


def unstruct_of(event: dict[str, str]) -> dict[str, Any]:
    wrapper = decode_sdj(event, "ue_pr", "ue_px")
    assert wrapper["schema"] == UNSTRUCT_SCHEMA, wrapper["schema"]
    return dict(wrapper["data"])


def assert_uuid4(value: str | None) -> str:
    assert value is not None, "network_user_id missing"
    parsed = uuid.UUID(value)
    assert str(parsed) == value.lower() and parsed.version == 4, f"not a canonical UUID v4: {value!r}"
    return value


def assert_request_facts(record: CollectorPayload, *, path: str, user_agent: str, started_ms: int) -> None:
    """What the collector must have recorded about the HTTP request itself, whatever the tracker."""
    assert record.path == path
    assert record.ip_address == "127.0.0.1"
    assert record.user_agent == user_agent
    assert record.header("User-Agent") == user_agent
    assert record.encoding == "UTF-8"
    assert record.collector, "collector name missing"
    assert started_ms - 1000 <= record.timestamp <= int(time.time() * 1000) + 1000, record.timestamp
    assert_uuid4(record.network_user_id)
    if record.body is None:
        assert record.content_type is None
    else:
        # The collector stores the lower-cased header value, and also appends it as the last header.
        assert record.content_type is not None
        assert record.content_type == (record.header("Content-Type") or "").lower()
        assert record.content_type.startswith("application/json")
        assert record.headers is not None and record.headers[-1] == record.content_type


def wait_for_events(collector: CollectorProcess, count: int, timeout_s: float = 15.0) -> list[CollectorPayload]:
    """Poll the raw log until it holds `count` tracker events (a POST record carries several)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = collector.records()
        if sum(len(events_of(record)) for record in records) >= count or time.monotonic() >= deadline:
            return records
        time.sleep(0.05)


# --- Enrich: the collector's raw records through the real enrich pipeline, offline ------------------------------

IGLU_CENTRAL = Path("/work/shared/iglu-central")  # a snapshot of Iglu Central: the standard schemas, offline
ACME_EVENT_SCHEMA = "iglu:com.acme/e2e_event/jsonschema/1-0-0"
ACME_CONTEXT_SCHEMA = "iglu:com.acme/e2e_context/jsonschema/1-0-0"
#: A resolver config naming no HTTP repository: only the embedded schemas and the --iglu directories are asked.
OFFLINE_RESOLVER = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
    "data": {"cacheSize": 500, "cacheTtl": 600, "repositories": []},
}
#: The `e` parameter → the enriched `event` field.
EVENT_TYPES = {"pv": "page_view", "se": "struct", "ue": "unstruct", "pp": "page_ping", "tr": "transaction", "ti": "transaction_item"}

_ACME_SCHEMAS: dict[str, dict[str, Any]] = {
    # What the e2e trackers send in their self-describing events and custom contexts; no other property is allowed.
    "e2e_event": {"index": {"type": "integer"}, "n": {"type": "integer"}, "text": {"type": "string"}},
    "e2e_context": {
        "index": {"type": "integer"},
        "step": {"type": "string"},
        "runner": {"enum": ["python", "node", "browser"]},
    },
}


def write_acme_iglu(root: Path) -> Path:
    """A local Iglu repository (static layout) with the com.acme schemas the e2e trackers use; returns `root`."""
    for name, properties in _ACME_SCHEMAS.items():
        path = root / "schemas" / "com.acme" / name / "jsonschema" / "1-0-0"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.acme", "name": name, "format": "jsonschema", "version": "1-0-0"},
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }))
    return root


def write_offline_resolver(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(OFFLINE_RESOLVER))
    return path


def offline_enrich_settings(directory: Path) -> Settings:
    """Settings whose enrich resolves schemas from Iglu Central's snapshot and the com.acme repository, never the network."""
    return load_config(overrides={
        "data_dir": str(directory / "data"),
        "enrich": {
            "iglu": [str(IGLU_CENTRAL), str(write_acme_iglu(directory / "iglu-acme"))],
            "resolver": str(write_offline_resolver(directory / "resolver.json")),
        },
    })


def raw_records(collector: CollectorProcess) -> list[bytes]:
    """The collector's raw records as stored: Thrift bytes, in log order."""
    return list(iter_records(collector.raw_dir)) if collector.raw_dir.exists() else []


def enrich_records(pipeline: Pipeline, records: Iterable[bytes]) -> tuple[dict[str, EnrichedEvent], list[dict[str, Any]]]:
    """Run raw records through the pipeline: good events keyed by event_id (each exactly once), and the bad rows."""
    good: dict[str, EnrichedEvent] = {}
    bad: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    etl_tstamp = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the TSV keeps milliseconds
    for record in records:
        outcome = pipeline.process(record, etl_tstamp)
        assert outcome.dropped == 0, "no enrichment that drops events is configured"
        assert len(outcome.good) + len(outcome.bad) == outcome.events_in
        for event in outcome.good:
            assert event.event_id is not None and event.event_id not in good, f"event_id {event.event_id} twice"
            good[event.event_id] = event
        bad.extend(outcome.bad)
    return good, bad


def millis(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def assert_enriched_from(enriched: EnrichedEvent, raw: dict[str, str], record: CollectorPayload) -> None:
    """What enrich must make of any tracker-protocol event, field for field, whatever the tracker."""
    assert enriched.event_id == raw["eid"]
    assert enriched.event == EVENT_TYPES[raw["e"]]
    assert (enriched.app_id, enriched.platform) == (raw.get("aid"), raw.get("p"))
    assert (enriched.name_tracker, enriched.v_tracker) == (raw.get("tna"), raw.get("tv"))
    assert (enriched.v_collector or "").startswith("plowline"), enriched.v_collector
    assert (enriched.v_etl or "").startswith("plowline-enrich-"), enriched.v_etl
    assert millis(enriched.collector_tstamp) == record.timestamp
    assert millis(enriched.dvce_created_tstamp) == int(raw["dtm"])
    assert millis(enriched.dvce_sent_tstamp) == int(raw["stm"])
    assert enriched.etl_tstamp is not None and enriched.derived_tstamp is not None
    assert enriched.network_userid == raw.get("tnuid", record.network_user_id)
    assert enriched.user_ipaddress == raw.get("ip", record.ip_address)
    assert enriched.useragent == raw.get("ua", record.user_agent)
    assert enriched.user_id == raw.get("uid")
    assert enriched.domain_userid == raw.get("duid")
    assert enriched.domain_sessionid == raw.get("sid")
    assert enriched.domain_sessionidx == (int(raw["vid"]) if "vid" in raw else None)
    assert enriched.page_url == raw.get("url")
    assert enriched.page_title == raw.get("page")
    assert enriched.page_referrer == raw.get("refr")
    assert enriched.contexts == (contexts_of(raw) if "co" in raw or "cx" in raw else None)
    # The default event_fingerprint_config: MD5 of `key US value US` over the sorted parameters but eid, nuid, stm, cv.
    hashed = "".join(f"{key}\x1f{value}\x1f" for key, value in sorted(raw.items()) if key not in ("eid", "nuid", "stm", "cv"))
    assert enriched.event_fingerprint == hashlib.md5(hashed.encode()).hexdigest()
    if raw["e"] == "ue":
        event = unstruct_of(raw)
        assert enriched.unstruct_event == event
        vendor, name, event_format, version = event["schema"].removeprefix("iglu:").split("/")
        assert (enriched.event_vendor, enriched.event_name, enriched.event_format, enriched.event_version) == (
            vendor, name, event_format, version)
    else:
        assert enriched.unstruct_event is None
    if raw["e"] == "se":
        assert (enriched.se_category, enriched.se_action, enriched.se_label, enriched.se_property) == (
            raw.get("se_ca"), raw.get("se_ac"), raw.get("se_la"), raw.get("se_pr"))
        assert enriched.se_value == (Decimal(raw["se_va"]) if "se_va" in raw else None)
        assert (enriched.event_vendor, enriched.event_name, enriched.event_version) == ("com.google.analytics", "event", "1-0-0")
    else:
        assert (enriched.se_category, enriched.se_action, enriched.se_label, enriched.se_property, enriched.se_value) == (
            None, None, None, None, None)
    if raw["e"] == "pv":
        assert (enriched.event_vendor, enriched.event_name, enriched.event_version) == (
            "com.snowplowanalytics.snowplow", "page_view", "1-0-0")

    # The TSV line is the canonical form: 131 columns, read back to the same event, the JSON columns wrapped as
    # self-describing JSON (spec/enrich.md §1.3): contexts/1-0-1 for both contexts columns, unstruct_event/1-0-0.
    line = enriched.to_tsv()
    assert line.count("\t") == 130 and "\n" not in line
    assert EnrichedEvent.from_tsv(line) == enriched
    columns = dict(zip(FIELD_NAMES, line.split("\t"), strict=True))
    assert columns["event_id"] == raw["eid"]
    for name, schema, value in [("contexts", CONTEXTS_PREFIX + "1", enriched.contexts),
                                ("derived_contexts", CONTEXTS_PREFIX + "1", enriched.derived_contexts),
                                ("unstruct_event", UNSTRUCT_SCHEMA, enriched.unstruct_event)]:
        assert (json.loads(columns[name]) if columns[name] else None) == (value and {"schema": schema, "data": value}), name


UTM = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def assert_url_parts(enriched: EnrichedEvent, prefix: str, url: str | None) -> None:
    """`page_url*` / `refr_url*` are the parts of the URL; a missing port is the scheme's default one (as Snowplow)."""
    names = ("scheme", "host", "port", "path", "query", "fragment")
    actual = tuple(getattr(enriched, f"{prefix}_url{name}") for name in names)
    if url is None:
        assert actual == (None,) * 6, actual
        return
    parts = urlsplit(url)
    expected = (parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], parts.path,
                parts.query or None, parts.fragment or None)
    assert actual == expected, (prefix, url)


def assert_google_referrer(enriched: EnrichedEvent, referrer: str, term: str) -> None:
    assert enriched.page_referrer == referrer
    assert_url_parts(enriched, "refr", referrer)
    assert enriched.refr_urlhost == "www.google.com"
    assert (enriched.refr_medium, enriched.refr_source, enriched.refr_term) == ("search", "Google", term)


def assert_campaign(enriched: EnrichedEvent, utm: dict[str, str] | None) -> None:
    utm = utm or {}
    actual = (enriched.mkt_source, enriched.mkt_medium, enriched.mkt_campaign, enriched.mkt_term, enriched.mkt_content)
    names = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
    assert actual == tuple(utm.get(name) for name in names)
    assert (enriched.mkt_clickid, enriched.mkt_network) == (None, None)


def derived_entities(enriched: EnrichedEvent, schema_prefix: str) -> list[dict[str, Any]]:
    return [entity["data"] for entity in enriched.derived_contexts or [] if entity["schema"].startswith(schema_prefix)]


def _unversioned(entity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entity.items() if key != "_schema_version"}


_SDK_NAMES = {"refr_device_tstamp": "refr_dvce_tstamp"}  # the Python SDK's name for that column


def assert_sdk_parses(enriched: EnrichedEvent) -> dict[str, Any]:
    """PyPI's snowplow-analytics-sdk reads our TSV line and finds every field we hold, with the same value."""
    parsed: dict[str, Any] = sdk_transform(enriched.to_tsv())
    ours = enriched.to_json()
    # Shredded entities: the same keys and data as our Scala-SDK-shaped JSON (which also has contexts' `_schema_version`).
    shredded = {key for key in ours if key.startswith(("contexts_", "unstruct_event_"))}
    assert {key for key in parsed if key.startswith(("contexts_", "unstruct_event_"))} == shredded
    for key in shredded:
        mine = ours[key]
        assert parsed[key] == ([_unversioned(entity) for entity in mine] if isinstance(mine, list) else _unversioned(mine)), key
    # Atomic fields: exactly the ones we set, each with our value.
    atomic = {_SDK_NAMES.get(key, key): value for key, value in parsed.items() if key not in shredded and key != "geo_location"}
    json_fields = {"contexts", "derived_contexts", "unstruct_event"}
    assert set(atomic) == {name for name in FIELD_NAMES if name not in json_fields and getattr(enriched, name) is not None}
    for name, value in atomic.items():
        mine = getattr(enriched, name)
        if isinstance(mine, datetime):
            assert datetime.fromisoformat(value.replace("Z", "+00:00")) == mine, (name, value, mine)
        elif isinstance(mine, Decimal):
            assert Decimal(str(value)) == mine, (name, value, mine)
        else:
            assert value == mine and type(value) is type(mine), (name, value, mine)
    return parsed


# --- The Python tracker (PyPI snowplow-tracker) ------------------------------------------------------------------

PYTHON_KINDS = ("pv", "se", "ue")


@dataclass
class PythonTrackerRun:
    """What one run of the Python tracker tracked (eid → kind and index) and what its emitter reported."""

    tracked: dict[str, tuple[str, int]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: list[Any] = field(default_factory=list)

    @property
    def acknowledged(self) -> set[str]:
        """The eids of the events the collector answered 200 for."""
        return {str(payload["eid"]) for payload in self.sent}


def track_python_events(
    collector_url: str,
    count: int,
    *,
    method: str = "post",
    batch_size: int = 4,
    page_url: str = "http://shop.example/p/{i}",
    referrer: str = "http://ref.example/",
    subject: Subject | None = None,
    namespace: str = "e2e-py",
    app_id: str = "plowline-e2e-py",
    first_index: int = 0,
) -> PythonTrackerRun:
    """Track `count` events with the synchronous Emitter, cycling page view, structured and self-describing event.

    Each carries an ACME_CONTEXT_SCHEMA context {"index", "runner": "python"}; page views go to `page_url`
    ("{i}" is the index) with `referrer`. Returns once every request has been answered.
    """
    run = PythonTrackerRun()
    session = requests.Session()
    emitter = Emitter(
        collector_url, method=method, batch_size=batch_size if method == "post" else 1,  # type: ignore[arg-type]
        on_success=run.sent.extend, on_failure=lambda ok, events: run.failed.append((ok, events)),
        request_timeout=10, session=session,
    )
    tracker = Tracker(namespace, emitter, subject=subject, app_id=app_id, encode_base64=(method == "get"))
    for index in range(first_index, first_index + count):
        context = [SelfDescribingJson(ACME_CONTEXT_SCHEMA, {"index": index, "runner": "python"})]
        kind = PYTHON_KINDS[index % 3]
        event: PageView | StructuredEvent | SelfDescribing
        if kind == "pv":
            event = PageView(page_url=page_url.replace("{i}", str(index)), page_title=f"Päge {index}", referrer=referrer,
                             context=context)
        elif kind == "se":
            event = StructuredEvent(category="e2e", action=f"action-{index}", label="label & more", property_="prop",
                                    value=index + 0.5, context=context)
        else:
            event = SelfDescribing(SelfDescribingJson(ACME_EVENT_SCHEMA, {"index": index, "text": "ünïcode ✓"}),
                                   context=context)
        eid = tracker.track(event)
        assert eid is not None
        run.tracked[eid] = (kind, index)
    tracker.flush()  # blocking: the emitter's sync_flush returns once every request has been answered
    session.close()
    return run


# --- The browser tracker's test page ------------------------------------------------------------------------------

CHROMIUM = os.environ.get("PLOWLINE_CHROMIUM", "/usr/bin/chromium")


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} is missing: run `bash scripts/install-test-deps.sh` (apt package chromium)")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_test_page(directory: Path) -> Iterator[str]:
    """browser_page.html (as index.html) and the tracker's UMD bundle (sp.js), served from a free loopback port."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(JS_DIR / "browser_page.html", directory / "index.html")
    shutil.copy(NODE_MODULES / "@snowplow" / "browser-tracker" / "dist" / "index.umd.min.js", directory / "sp.js")
    with serve_directory(directory) as url:
        yield url


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A static web site of `directory` on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_browser(page_url: str, collector_url: str, profile_dir: Path, timeout_ms: int = 30000) -> dict[str, Any]:
    """Open the page in headless Chromium (browser_run.mjs) and return its report; fail unless every event was sent."""
    require_js_deps()
    require_chromium()
    result = run_node(["browser_run.mjs", page_url, collector_url, str(profile_dir), str(timeout_ms)],
                      timeout_s=timeout_ms / 1000 * 3)
    assert result.returncode == 0, f"browser run failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["state"]["error"] is None and report["state"]["failures"] == [], report
    return report


class BrowserDriver:
    """Headless Chromium driven one step at a time (js/browser_driver.mjs), so a test can act between steps.

    `driver("goto", url=...)`, `driver("eval", expr=...)`, `driver("wait", expr=...)`, `driver("click", selector=...)`:
    each returns the step's JSON value or raises AssertionError with the browser's recent console log.
    """

    def __init__(self, profile_dir: Path, timeout_ms: int = 30000) -> None:
        require_js_deps()
        require_chromium()
        self.timeout_s = timeout_ms / 1000 * 2
        self.process = subprocess.Popen(
            ["node", "browser_driver.mjs", str(profile_dir), str(timeout_ms)], cwd=JS_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        try:
            line = self._answers.get(timeout=self.timeout_s)
        except queue.Empty:
            raise AssertionError(f"browser step {op} {args} did not answer in {self.timeout_s}s") from None
        if line is None:
            self.close()
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the browser driver exited ({self.process.returncode}) during {op}:\n{stderr}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"browser step {op} {args} failed: {answer['error']}\n" + "\n".join(answer.get("log", [])))
        return answer["value"]

    def close(self) -> None:
        """Close the browser; kill the whole process group (node and Chromium) if it does not exit."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"op": "close"}) + "\n")
                self.process.stdin.close()
                self.process.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
