"""Acceptance: the pipeline as separate processes on NATS JetStream and PostgreSQL, as on several machines.

Each test runs its own nats-server (free port, file store in a temp dir) and its own PostgreSQL database, and in
them 2 `plowline collector` processes (each its own port), 2 `plowline enrich` processes and 1
`plowline load --loader postgres`, configured by a TOML file and PLOWLINE_* variables, exactly as users run them.
Official trackers (PyPI snowplow-tracker, npm @snowplow/node-tracker) send to both collectors. Every event a
collector acknowledged (2xx) must end up in PostgreSQL atomic.events exactly once, with its fields; and so after each
fault: kill -9 of an enrich process and of the loader mid-stream, a NATS server restart, a PostgreSQL restart.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.distributed_support import (
    POSTGRES_DSN,
    DistributedPipeline,
    NatsServer,
    TrackerLoop,
    acknowledged_by,
    assert_stored_exactly_once,
    bad_row_count,
    private_database,
    refused_by,
    wait_until,
)
from tests.e2e.support import ACME_CONTEXT_SCHEMA, require_js_deps, run_node

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[DistributedPipeline]:
    """The five processes, started, on a private nats-server and database; everything killed and dropped after."""
    with private_database() as dsn:
        nats = NatsServer(tmp_path / "nats-store", tmp_path / "nats-server.log")
        pipe = DistributedPipeline(tmp_path / "pipeline", nats, dsn)
        try:
            nats.start()
            yield pipe.start()
        finally:
            for part in pipe.parts.values():
                part.kill(signal.SIGKILL)
            nats.kill(signal.SIGKILL)


def start_loops(pipeline: DistributedPipeline) -> list[TrackerLoop]:
    """One Python tracker per collector, POSTing batches of 3 events until stopped."""
    loops = [TrackerLoop(url, f"py-{number}") for number, url in enumerate(pipeline.collector_urls)]
    for loop in loops:
        loop.start()
    return loops


def stop_loops(loops: list[TrackerLoop]) -> None:
    for loop in loops:
        loop.stop()
    for loop in loops:
        loop.join_checked()


def assert_sending(loops: list[TrackerLoop]) -> None:
    """The fault happens while events flow: the trackers are still sending."""
    assert all(loop.is_alive() for loop in loops), "a tracker stopped before the fault"


def test_events_sent_to_both_collectors_are_stored_once_with_their_fields(pipeline: DistributedPipeline) -> None:
    first, second = pipeline.collector_urls
    python = [TrackerLoop(first, "py-post", method="post", batch_size=4, pause_s=0, limit=30),
              TrackerLoop(second, "py-get", method="get", pause_s=0, limit=15)]
    for loop in python:
        loop.start()
    require_js_deps()
    node: dict[str, dict[str, str]] = {}
    for url, method in ((second, "post"), (first, "get")):
        result = run_node(["node_tracker.mjs", url, "10", method])
        assert result.returncode == 0, f"node tracker failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        report = json.loads(result.stdout)
        assert report["failures"] == []
        tracked = {event["eid"]: event for event in report["tracked"]}
        assert sorted(report["sent"]) == sorted(tracked) and len(tracked) == 10
        node.update(tracked)
    stop_loops(python)
    assert refused_by(python) == {}
    acknowledged = {**acknowledged_by(python), **node}
    assert len(acknowledged) == 30 + 15 + 10 + 10

    rows = pipeline.wait_for_stored(set(acknowledged))
    assert_stored_exactly_once(rows, acknowledged)
    assert len(rows) == len(acknowledged)
    kinds = {row["event"] for row in rows}
    assert kinds == {"page_view", "struct", "unstruct"}
    assert {row["name_tracker"] for row in rows} == {"e2e-dist-py-post", "e2e-dist-py-get", "e2e-node"}
    assert bad_row_count(pipeline.dsn) == 0
    pipeline.assert_all_running()


@pytest.mark.slow
def test_kill_9_of_an_enrich_process_then_of_the_loader_mid_stream(pipeline: DistributedPipeline) -> None:
    loops = start_loops(pipeline)
    try:
        pipeline.wait_for_growth(30)
        # (a) One enrich process dies mid-batch; the other carries on alone, and gets the dead one's un-acked
        # records after ack_wait_s (3 s); then it is restarted and joins the group again.
        assert_sending(loops)
        enrich = pipeline.parts["enrich-0"]
        enrich.kill(signal.SIGKILL)
        pipeline.wait_for_growth(60)
        enrich.start()
        pipeline.wait_for_growth(30)
        # (b) The loader dies mid-load: its batch in hand is neither acked nor (maybe) committed; restarted, it
        # gets its un-acked records again and stores each event once.
        assert_sending(loops)
        loader = pipeline.parts["load"]
        loader.kill(signal.SIGKILL)
        time.sleep(2)  # the enriched stream fills up meanwhile
        loader.start()
        pipeline.wait_for_growth(30)
    finally:
        stop_loops(loops)
    assert refused_by(loops) == {}, "the collectors were never down: every request must be acknowledged"
    acknowledged = acknowledged_by(loops)
    rows = pipeline.wait_for_stored(set(acknowledged))
    assert_stored_exactly_once(rows, acknowledged)
    assert len(rows) == len(acknowledged)
    assert bad_row_count(pipeline.dsn) == 0
    assert (enrich.starts, loader.starts) == (2, 2)
    pipeline.assert_all_running()


def tracking_request_while_down(collector_url: str) -> tuple[dict[str, str], int]:
    """One GET tracking request (a page view with a context) and the collector's answer status."""
    contexts = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": ACME_CONTEXT_SCHEMA, "data": {"index": 0, "runner": "python"}}]}
    event = {"e": "pv", "eid": str(uuid.uuid4()), "aid": "plowline-dist-probe", "p": "web", "tna": "probe",
             "tv": "probe-0", "url": "http://shop.example/probe", "co": json.dumps(contexts)}
    response = httpx.get(collector_url + "/i", params=event, timeout=30)
    return event, response.status_code


@pytest.mark.slow
def test_a_nats_server_restart_mid_stream(pipeline: DistributedPipeline) -> None:
    loops = start_loops(pipeline)
    probe: dict[str, str] = {}
    try:
        pipeline.wait_for_growth(30)
        assert_sending(loops)
        pipeline.nats.kill(signal.SIGKILL)
        # While JetStream is away nothing is acknowledged: a collector waits timeout_s (3 s) for the publish ack,
        # then answers 503 so trackers retry. The request's record may still reach the stream later (the client
        # keeps it for the reconnect), so a refused event may be stored, but at most once.
        probe, status = tracking_request_while_down(pipeline.collector_urls[0])
        assert status == 503
        wait_until("both trackers had requests refused", lambda: all(loop.refused for loop in loops), 60,
                   pipeline.logs)
        pipeline.nats.start()  # the same port and store directory
        pipeline.wait_for_growth(60)
    finally:
        stop_loops(loops)
    acknowledged, refused = acknowledged_by(loops), refused_by(loops)
    assert refused and not set(refused) & set(acknowledged)
    rows = pipeline.wait_for_stored(set(acknowledged))
    assert_stored_exactly_once(rows, acknowledged, {**refused, probe["eid"]: probe})
    assert bad_row_count(pipeline.dsn) == 0
    pipeline.assert_all_running()


# --- PostgreSQL restart: the shared local server, as tests/storage/test_postgres.py restarts it ---------------------


def _cluster() -> list[str]:
    versions = sorted(Path("/etc/postgresql").glob("*/main"))
    if not shutil.which("pg_ctlcluster") or not versions:
        pytest.skip("needs a local cluster managed by pg_ctlcluster")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].parent.name, "main"]


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _ensure_running(cluster: list[str], dsn: str) -> None:
    """Start the cluster if it is stopped (a failed test must not leave it so), and wait until it answers."""
    if subprocess.run([*cluster, "status"], check=False, capture_output=True).returncode != 0:
        subprocess.run([*cluster, "start"], check=False, capture_output=True)
    wait_until("PostgreSQL answers again", lambda: _answers(dsn), 60)


@pytest.mark.slow
def test_a_postgresql_restart_mid_load(pipeline: DistributedPipeline) -> None:
    if "127.0.0.1" not in POSTGRES_DSN and "localhost" not in POSTGRES_DSN:
        pytest.skip("restarts only a server on this machine")
    cluster = _cluster()
    loader = pipeline.parts["load"]
    loops = start_loops(pipeline)
    try:
        pipeline.wait_for_growth(30)
        assert_sending(loops)
        retries_before = loader.log(tail=1 << 30).count("load failed; retrying")
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)
        try:
            # The loader keeps its batch and retries with backoff; enrich and the collectors are not affected.
            wait_until("the loader retries while PostgreSQL is down",
                       lambda: loader.log(tail=1 << 30).count("load failed; retrying") >= retries_before + 2, 60,
                       pipeline.logs)
        finally:
            subprocess.run([*cluster, "start"], check=False, capture_output=True)
            _ensure_running(cluster, POSTGRES_DSN)
        pipeline.wait_for_growth(30)
    finally:
        _ensure_running(cluster, POSTGRES_DSN)
        stop_loops(loops)
    assert refused_by(loops) == {}, "the collectors do not depend on PostgreSQL: every request is acknowledged"
    acknowledged = acknowledged_by(loops)
    rows = pipeline.wait_for_stored(set(acknowledged))
    assert_stored_exactly_once(rows, acknowledged)
    assert len(rows) == len(acknowledged)
    assert bad_row_count(pipeline.dsn) == 0
    pipeline.assert_all_running()
