"""Helpers for the real-tracker tests: read tracker-protocol events back out of raw records."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from plowline.payload import CollectorPayload
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
