"""Helpers for the distributed acceptance tests: each part of the pipeline as its own `plowline` process on NATS
JetStream and PostgreSQL, a private nats-server, a private PostgreSQL database, and trackers sending in a loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from snowplow_tracker import Emitter, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Tracker

from plowline.config import CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV
from tests.e2e.support import (
    ACME_CONTEXT_SCHEMA,
    ACME_EVENT_SCHEMA,
    EVENT_TYPES,
    IGLU_CENTRAL,
    UNSTRUCT_SCHEMA,
    contexts_of,
    unstruct_of,
    write_acme_iglu,
    write_offline_resolver,
)
from tests.support.collector_process import free_port

NATS_SERVER = os.environ.get("PLOWLINE_NATS_SERVER", "/usr/sbin/nats-server")
POSTGRES_DSN = os.environ.get("PLOWLINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT_S = 60.0
STORED_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, details: Callable[[], str] = lambda: "",
               interval_s: float = 0.2) -> None:
    """Poll `check` until it is true; AssertionError naming `what` (and `details()`) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not after {timeout_s:g}s\n{details()}")
        time.sleep(interval_s)


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# --- a nats-server of the test's own -------------------------------------------------------------------------------


@dataclass
class NatsServer:
    """`nats-server -js` on a free loopback port with its store in `store_dir`; can be killed and started again on
    the same port and store (a server restart)."""

    store_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, stream: str, query: str = "") -> str:
        return f"nats://127.0.0.1:{self.port}/{stream}" + (f"?{query}" if query else "")

    def start(self) -> NatsServer:
        if not os.access(NATS_SERVER, os.X_OK):
            raise AssertionError(f"{NATS_SERVER} is missing: install nats-server (scripts/install-test-deps.sh)")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port), "-js",
                 "-sd", str(self.store_dir)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until("nats-server answers /healthz", self._healthy, START_TIMEOUT_S, self.log, 0.05)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"nats-server exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        _kill_group(self.process, sig)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
        # The port must be free before a restart binds it again.
        wait_until(f"port {self.port} released", lambda: not _port_open(self.port), 10, self.log, 0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- a PostgreSQL database of the test's own -----------------------------------------------------------------------


@contextlib.contextmanager
def private_database() -> Iterator[str]:
    """CREATE DATABASE with a unique name on the test server; yields its DSN; DROP (FORCE) afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise AssertionError(f"PostgreSQL at {POSTGRES_DSN} does not answer (scripts/ensure-services.sh starts it): "
                             f"{exc}") from None
    name = f"plowline_dist_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(POSTGRES_DSN, dbname=name)
    finally:
        # The server may have been restarted by the test: wait until it answers, then drop.
        wait_until("PostgreSQL answers", _answers, 60)
        with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _answers(dsn: str = POSTGRES_DSN) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


STORED_COLUMNS = ("event_id::text AS event_id, event, app_id, platform, name_tracker, v_tracker, v_collector, "
                  "page_url, page_title, page_referrer, se_category, se_action, se_label, se_property, se_value, "
                  "domain_userid, event_vendor, event_name, contexts, unstruct_event")


def stored_events(dsn: str) -> list[dict[str, Any]]:
    """Every row of atomic.events (the columns the tests compare); [] while the loader has not created it, or
    while the server is down."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, row_factory=dict_row) as conn:
            return conn.execute(f"SELECT {STORED_COLUMNS} FROM atomic.events").fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return []


def bad_row_count(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        row = conn.execute("SELECT count(*) FROM atomic.bad_rows").fetchone()
    assert row is not None
    return int(row[0])


def assert_row_matches(row: dict[str, Any], sent: dict[str, str]) -> None:
    """What enrich and the postgres loader must make of one tracker-protocol event, column by column."""
    eid = sent["eid"]
    assert row["event_id"] == eid
    assert row["event"] == EVENT_TYPES[sent["e"]], eid
    assert (row["app_id"], row["platform"]) == (sent.get("aid"), sent.get("p")), eid
    assert (row["name_tracker"], row["v_tracker"]) == (sent.get("tna"), sent.get("tv")), eid
    assert (row["v_collector"] or "").startswith("plowline") and (row["v_collector"] or "").endswith("-nats"), row
    assert (row["page_url"], row["page_title"], row["page_referrer"]) == (
        sent.get("url"), sent.get("page"), sent.get("refr")), eid
    assert row["domain_userid"] == sent.get("duid"), eid
    assert (row["se_category"], row["se_action"], row["se_label"], row["se_property"]) == (
        sent.get("se_ca"), sent.get("se_ac"), sent.get("se_la"), sent.get("se_pr")), eid
    assert row["se_value"] == (Decimal(sent["se_va"]) if "se_va" in sent else None), eid
    assert row["contexts"] == {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",
                               "data": contexts_of(sent)}, eid
    if sent["e"] == "ue":
        unstruct = unstruct_of(sent)
        assert row["unstruct_event"] == {"schema": UNSTRUCT_SCHEMA, "data": unstruct}, eid
        vendor, name, _, _ = unstruct["schema"].removeprefix("iglu:").split("/")
        assert (row["event_vendor"], row["event_name"]) == (vendor, name), eid
    else:
        assert row["unstruct_event"] is None, eid
    if sent["e"] == "se":
        assert (row["event_vendor"], row["event_name"]) == ("com.google.analytics", "event"), eid
    if sent["e"] == "pv":
        assert (row["event_vendor"], row["event_name"]) == ("com.snowplowanalytics.snowplow", "page_view"), eid


# --- the pipeline: every part its own process --------------------------------------------------------------------


@dataclass
class Part:
    """One `plowline ...` process in its own session (so a kill reaches all it started), logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    killed: bool = False  # by the test, and not started again since

    def start(self) -> Part:
        self.starts += 1
        self.killed = False
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen([sys.executable, "-m", "plowline", *self.argv], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                            start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process group and wait for the process (SIGKILL if SIGTERM does not stop it)."""
        if self.process is None:
            return
        self.killed = True
        _kill_group(self.process, sig)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
        _kill_group(self.process, signal.SIGKILL)  # nothing of its group outlives it

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


STREAM_QUERY = "ack_wait_s=3&timeout_s=3"


@dataclass
class DistributedPipeline:
    """2 collectors, 2 enrich processes and 1 postgres loader, on a private nats-server and database.

    Streams, storage and enrich's Iglu setup come from a TOML file (PLOWLINE_CONFIG); the enrich processes'
    worker count and batch size from PLOWLINE_* environment variables; each collector's port from --port.
    """

    directory: Path
    nats: NatsServer
    dsn: str
    parts: dict[str, Part] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        suffix = uuid.uuid4().hex[:8]
        self.streams = {kind: self.nats.url(f"plowline_{kind}_{suffix}", STREAM_QUERY) for kind in ("raw", "enriched", "bad")}
        iglu = [str(IGLU_CENTRAL), str(write_acme_iglu(self.directory / "iglu-acme"))]
        resolver = write_offline_resolver(self.directory / "resolver.json")
        config = self.directory / "plowline.toml"
        config.write_text("\n".join([
            f"data_dir = {_toml(str(self.directory / 'data'))}",
            "[streams]",
            *(f"{kind} = {_toml(url)}" for kind, url in self.streams.items()),
            "[enrich]",
            f"resolver = {_toml(str(resolver))}",
            f"iglu = [{', '.join(map(_toml, iglu))}]",
            "[storage]",
            'loaders = ["postgres"]',
            "[storage.postgres]",
            f"dsn = {_toml(self.dsn)}",
            'schema_name = "atomic"',
            "",
        ]))
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("PLOWLINE_") or key.startswith("PLOWLINE_TEST_")}
        env.pop(EFFECTIVE_SETTINGS_ENV, None)
        env.update({CONFIG_FILE_ENV: str(config), "PLOWLINE_ENRICH__WORKERS": "1", "PLOWLINE_ENRICH__BATCH_SIZE": "50"})
        self.ports = [free_port(), free_port()]
        for number, port in enumerate(self.ports):
            self._part(f"collector-{number}", ["collector", "--port", str(port), "--workers", "1"], env)
        for number in range(2):
            self._part(f"enrich-{number}", ["enrich"], env)
        self._part("load", ["load", "--loader", "postgres"], env)

    def _part(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.parts[name] = Part(name, argv, env, self.directory, self.directory / f"{name}.log")

    @property
    def collector_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> DistributedPipeline:
        for part in self.parts.values():
            part.start()
        for url in self.collector_urls:
            wait_until(f"collector {url} healthy", lambda url=url: self._healthy(url), START_TIMEOUT_S, self.logs)  # type: ignore[misc]
        return self

    def _healthy(self, url: str) -> bool:
        dead = [name for name, part in self.parts.items() if not part.alive()]
        if dead:
            raise AssertionError(f"{dead} exited at start-up\n{self.logs()}")
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def assert_all_running(self) -> None:
        """No part exited by itself: each one rode out the faults it did not suffer."""
        dead = {name: part.process.returncode for name, part in self.parts.items()
                if part.process is not None and not part.killed and not part.alive()}
        assert not dead, f"parts exited: {dead}\n{self.logs()}"

    def stop(self) -> None:
        for name in ("collector-0", "collector-1", "enrich-0", "enrich-1", "load"):
            self.parts[name].kill(signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{part.log()}" for name, part in self.parts.items()) + (
            f"\n--- nats-server ---\n{self.nats.log()}")

    def stored(self) -> list[dict[str, Any]]:
        return stored_events(self.dsn)

    def stored_count(self) -> int:
        return len(self.stored())

    def wait_for_stored(self, eids: set[str], timeout_s: float = STORED_TIMEOUT_S) -> list[dict[str, Any]]:
        """Poll atomic.events until it holds every event of `eids`; return all its rows."""
        rows: list[dict[str, Any]] = []

        def complete() -> bool:
            nonlocal rows
            self.assert_all_running()
            rows = self.stored()
            return eids <= {row["event_id"] for row in rows}

        def details() -> str:
            missing = eids - {row["event_id"] for row in rows}
            return f"{len(missing)} of {len(eids)} events missing, e.g. {sorted(missing)[:3]}\n{self.logs()}"

        wait_until("every acknowledged event stored", complete, timeout_s, details, 0.5)
        return rows

    def wait_for_growth(self, by: int, timeout_s: float = STORED_TIMEOUT_S) -> int:
        """Wait until atomic.events has `by` more rows than now (events are flowing); return the new count."""
        start = self.stored_count()
        count = start

        def grown() -> bool:
            nonlocal count
            self.assert_all_running()
            count = self.stored_count()
            return count >= start + by
        wait_until(f"{by} more events stored (from {start})", grown, timeout_s, self.logs, 0.3)
        return count


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_stored_exactly_once(rows: list[dict[str, Any]], acknowledged: dict[str, dict[str, str]],
                               unacknowledged: dict[str, dict[str, str]] | None = None) -> None:
    """Each acknowledged event is stored exactly once, with its fields; an event the collector refused (5xx) may
    be stored (at most once: its record can reach the stream after the collector gave up waiting), nothing else is."""
    counts = Counter(row["event_id"] for row in rows)
    twice = {eid: n for eid, n in counts.items() if n != 1}
    assert not twice, f"events stored more than once: {twice}"
    missing = set(acknowledged) - set(counts)
    assert not missing, f"{len(missing)} acknowledged events not stored, e.g. {sorted(missing)[:3]}"
    sent = {**(unacknowledged or {}), **acknowledged}
    strays = set(counts) - set(sent)
    assert not strays, f"stored events nobody sent: {sorted(strays)[:3]}"
    for row in rows:
        assert_row_matches(row, sent[row["event_id"]])


# --- trackers sending while the test breaks things ---------------------------------------------------------------

#: The Python tracker retries a failed request by itself; these tests count what the collector acknowledged, so a
#: refused request (5xx, or no answer: -1) is reported and not retried.
NO_RETRY = {code: False for code in (-1, 408, 500, 502, 503, 504)}


class TrackerLoop(threading.Thread):
    """The official Python tracker (PyPI snowplow-tracker) sending page views, structured and self-describing
    events, each with a custom context, to one collector, until `stop()` (or `limit` events)."""

    def __init__(self, collector_url: str, name: str, *, method: str = "post", batch_size: int = 3,
                 pause_s: float = 0.02, limit: int | None = None) -> None:
        super().__init__(name=f"tracker-{name}", daemon=True)
        self.collector_url, self.tracker_name, self.method = collector_url, name, method
        self.batch_size, self.pause_s, self.limit = batch_size, pause_s, limit
        self.acknowledged: dict[str, dict[str, str]] = {}
        self.refused: dict[str, dict[str, str]] = {}
        self.error: BaseException | None = None
        self._stop_sending = threading.Event()
        self._lock = threading.Lock()

    def _sent(self, payloads: list[dict[str, Any]]) -> None:
        with self._lock:
            for payload in payloads:
                self.acknowledged[str(payload["eid"])] = {key: str(value) for key, value in payload.items()}

    def _failed(self, _ok: int, payloads: list[dict[str, Any]]) -> None:
        with self._lock:
            for payload in payloads:
                self.refused[str(payload["eid"])] = {key: str(value) for key, value in payload.items()}

    def run(self) -> None:
        try:
            with requests.Session() as session:
                emitter = Emitter(
                    self.collector_url, method=self.method,  # type: ignore[arg-type]
                    batch_size=self.batch_size if self.method == "post" else 1,
                    on_success=self._sent, on_failure=self._failed, request_timeout=20, session=session,
                    custom_retry_codes=NO_RETRY,
                )
                tracker = Tracker(f"e2e-dist-{self.tracker_name}", emitter, app_id=f"plowline-dist-{self.tracker_name}",
                                  encode_base64=(self.method == "get"))
                index = 0
                while not self._stop_sending.is_set() and (self.limit is None or index < self.limit):
                    tracker.track(self._event(index))
                    index += 1
                    if self.pause_s:
                        time.sleep(self.pause_s)
                tracker.flush()
        except BaseException as exc:  # reported by join_checked
            self.error = exc

    def _event(self, index: int) -> PageView | StructuredEvent | SelfDescribing:
        context = [SelfDescribingJson(ACME_CONTEXT_SCHEMA, {"index": index, "runner": "python"})]
        kind = index % 3
        if kind == 0:
            return PageView(page_url=f"http://shop.example/{self.tracker_name}/{index}", page_title=f"Päge {index}",
                            referrer="http://ref.example/", context=context)
        if kind == 1:
            return StructuredEvent(category="e2e", action=f"action-{index}", label="label & more", property_="prop",
                                   value=index + 0.5, context=context)
        return SelfDescribing(SelfDescribingJson(ACME_EVENT_SCHEMA, {"index": index, "text": "ünïcode ✓"}),
                              context=context)

    def stop(self) -> None:
        self._stop_sending.set()

    def join_checked(self, timeout_s: float = 60.0) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), f"{self.name} did not finish in {timeout_s}s"
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error

    def sent_count(self) -> int:
        with self._lock:
            return len(self.acknowledged) + len(self.refused)


def acknowledged_by(loops: list[TrackerLoop]) -> dict[str, dict[str, str]]:
    return {eid: payload for loop in loops for eid, payload in loop.acknowledged.items()}


def refused_by(loops: list[TrackerLoop]) -> dict[str, dict[str, str]]:
    return {eid: payload for loop in loops for eid, payload in loop.refused.items()}

