"""The Snowplow Micro compatible API (spec/protocol.md §5) on `plowline up` with micro.enabled, fed by the real
Python tracker and by requests that must fail: /micro/all, /micro/good (GET and POST filters), /micro/bad (GET
and POST filters), /micro/reset (a watermark: history stays, the API counts from it), /micro/iglu (the schemas
enrich resolves)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from snowplow_tracker import Emitter, SelfDescribing, SelfDescribingJson, Tracker

from plowline.analytics.dashboard import create_dashboard_app
from plowline.config import Settings
from tests.e2e.dashboard_support import start_plowline_up, wait_for
from tests.e2e.support import ACME_CONTEXT_SCHEMA, ACME_EVENT_SCHEMA, PythonTrackerRun, track_python_events
from tests.support.collector_process import free_port
from tests.support.plowline_cli import PlowlineProcess

pytestmark = pytest.mark.e2e

PAGE_VIEW_SCHEMA = "iglu:com.snowplowanalytics.snowplow/page_view/jsonschema/1-0-0"
BADROWS = "iglu:com.snowplowanalytics.snowplow.badrows/"
EXTRACT_LINE = "Error while extracting event(s) from collector payload and validating it/them."


@dataclass
class Micro:
    process: PlowlineProcess
    base_url: str

    def get(self, path: str) -> Any:
        response = httpx.get(self.base_url + path, timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(self.base_url + path, json=body, timeout=30)
        assert response.status_code == 200, f"POST {path} {body}: {response.status_code} {response.text}"
        return response.json()

    def reset(self) -> None:
        response = httpx.get(self.base_url + "/micro/reset", timeout=30)
        assert (response.status_code, response.text) == (200, "Reset completed")
        assert self.get("/micro/all") == {"total": 0, "good": 0, "bad": 0}

    def wait_total(self, total: int) -> dict[str, int]:
        counts: dict[str, int] = wait_for(lambda: self.get("/micro/all"), lambda c: c["total"] >= total,
                                          f"{total} events in /micro/all\n{self.process.log()[-4000:]}")
        return counts


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Micro]:
    root = tmp_path_factory.mktemp("micro")
    process, base_url = start_plowline_up(root, micro=True)
    try:
        yield Micro(process, base_url)
    finally:
        assert process.stop() == 0, process.log()[-4000:]


def send_schema_violation(base_url: str) -> None:
    """A self-describing event whose data breaks its schema: enrich must make it a schema_violations bad row."""
    session = requests.Session()
    emitter = Emitter(base_url, method="post", batch_size=1, session=session, request_timeout=10)
    Tracker("micro-bad", emitter, app_id="micro-bad").track(
        SelfDescribing(SelfDescribingJson(ACME_EVENT_SCHEMA, {"index": "not a number"})))
    emitter.flush()
    session.close()


def send_unknown_event_type(base_url: str) -> str:
    """A GET (tracker protocol v1) whose event type does not exist: a schema_violations bad row (atomic field)."""
    marker = f"bad-{uuid.uuid4().hex[:8]}"
    assert httpx.get(base_url + "/i", params={"e": "zz", "aid": marker}, timeout=10).status_code == 200
    return marker


def send_protocol_violation(base_url: str) -> None:
    """A tp2 POST whose body is not payload_data JSON: the adapter refuses it (tracker_protocol_violations)."""
    response = httpx.post(base_url + "/com.snowplowanalytics.snowplow/tp2", content=b"{not json",
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200


def track(base_url: str, count: int) -> PythonTrackerRun:
    run = track_python_events(base_url, count, method="post", batch_size=3, namespace="micro", app_id="micro-app")
    assert run.failed == [] and run.acknowledged == set(run.tracked)
    return run


def test_good_and_bad_events(micro: Micro) -> None:
    micro.reset()
    run = track(micro.base_url, 6)  # page view, struct, self-describing, twice
    send_schema_violation(micro.base_url)
    marker = send_unknown_event_type(micro.base_url)
    send_protocol_violation(micro.base_url)
    counts = micro.wait_total(9)
    assert counts == {"total": 9, "good": 6, "bad": 3}
    assert micro.post("/micro/all", {}) == counts

    good = micro.get("/micro/good")
    assert {item["event"]["event_id"] for item in good} == set(run.tracked)
    # Compared as times, not text: the SDK JSON writes a whole second as "…:31Z", after "…:31.004Z" in text order.
    stamps = [datetime.fromisoformat(item["event"]["collector_tstamp"].replace("Z", "+00:00")) for item in good]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    for item in good:
        kind, index = run.tracked[item["event"]["event_id"]]
        assert item["incomplete"] is False
        assert item["eventType"] == {"pv": "page_view", "se": "struct", "ue": "unstruct"}[kind]
        assert item["schema"] == {"pv": PAGE_VIEW_SCHEMA, "se": "iglu:com.google.analytics/event/jsonschema/1-0-0",
                                  "ue": ACME_EVENT_SCHEMA}[kind]
        assert ACME_CONTEXT_SCHEMA in item["contexts"]
        assert item["event"]["app_id"] == "micro-app" and item["event"]["v_tracker"].startswith("py-")
        assert item["event"]["contexts_com_acme_e2e_context_1"][0]["index"] == index
        parameters = item["rawEvent"]["parameters"]
        assert (parameters["e"], parameters["eid"], parameters["aid"]) == (kind, item["event"]["event_id"], "micro-app")
        assert json.loads(parameters["co"])["data"][0]["data"]["index"] == index
        assert item["rawEvent"]["context"]["useragent"] == item["event"]["useragent"]
        if kind == "ue":
            assert json.loads(parameters["ue_pr"])["data"]["schema"] == ACME_EVENT_SCHEMA
            assert item["event"]["unstruct_event_com_acme_e2e_event_1"]["index"] == index

    def ids(body: dict[str, Any]) -> list[str]:
        return [item["event"]["event_id"] for item in micro.post("/micro/good", body)]

    page_views = {eid for eid, (kind, _) in run.tracked.items() if kind == "pv"}
    assert set(ids({"event_type": "page_view"})) == page_views and len(page_views) == 2
    assert len(ids({"schema": ACME_EVENT_SCHEMA})) == 2
    assert len(ids({"event_type": "unstruct", "schema": PAGE_VIEW_SCHEMA})) == 0
    assert len(ids({"contexts": [ACME_CONTEXT_SCHEMA]})) == 6
    assert ids({"contexts": [ACME_CONTEXT_SCHEMA, "iglu:com.acme/nothing/jsonschema/1-0-0"]}) == []
    assert ids({"limit": 2}) == [item["event"]["event_id"] for item in good[:2]]
    assert len(ids({})) == 6
    refused = httpx.post(micro.base_url + "/micro/good", json={"limit": "two"}, timeout=10)
    assert refused.status_code == 400

    # Micro 4's paged API over the same events (micro_paged.py; its own tests cover it in depth).
    paged = micro.post("/micro/events", {"filters": [{"column": "event", "values": ["page_view"]}],
                                         "validEvents": True, "page": 1, "pageSize": 1})
    assert (paged["totalItems"], paged["totalPages"]) == (2, 2)
    assert paged["events"] == [good[[item["eventType"] for item in good].index("page_view")]["event"]]
    assert "contexts_com_acme_e2e_context_1.index" in micro.get("/micro/columns")

    bad = micro.get("/micro/bad")
    assert len(bad) == 3
    for item in bad:
        assert len(item["errors"]) == 2 and json.loads(item["errors"][1])["schema"].startswith(BADROWS)
    kinds = [kind_of(item) for item in bad]
    assert sorted(kinds) == ["schema_violations", "schema_violations", "tracker_protocol_violations"]
    protocol_bad = bad[kinds.index("tracker_protocol_violations")]
    assert protocol_bad["errors"][0] == EXTRACT_LINE
    assert protocol_bad["collectorPayload"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2"}
    assert protocol_bad["collectorPayload"]["body"] == "{not json" and protocol_bad["rawEvent"] is None
    schema_bad = [item for item in bad if kind_of(item) == "schema_violations"]
    assert {item["errors"][0] for item in schema_bad} == {"Error while validating the event."}
    by_app = {item["rawEvent"]["parameters"]["aid"]: item for item in schema_bad}
    assert set(by_app) == {"micro-bad", marker}
    assert by_app[marker]["collectorPayload"]["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp1"}
    assert by_app[marker]["rawEvent"]["parameters"]["e"] == "zz"
    assert by_app["micro-bad"]["collectorPayload"]["api"]["version"] == "tp2"

    def bad_apps(body: dict[str, Any]) -> list[str]:
        return sorted(str((item["rawEvent"] or {}).get("parameters", {}).get("aid")) + "/" + kind_of(item)
                      for item in micro.post("/micro/bad", body))

    assert bad_apps({"version": "tp1"}) == [f"{marker}/schema_violations"]
    assert bad_apps({"version": "tp2"}) == ["None/tracker_protocol_violations", "micro-bad/schema_violations"]
    assert len(bad_apps({"vendor": "com.snowplowanalytics.snowplow"})) == 3
    assert bad_apps({"vendor": "com.acme"}) == []
    assert [kind_of(item) for item in micro.post("/micro/bad", {"limit": 1})] == kinds[:1]


def kind_of(bad_event: dict[str, Any]) -> str:
    """The bad-row type of a BadEvent (from the bad-row JSON in its errors)."""
    return str(json.loads(bad_event["errors"][1])["schema"].split("/")[1])


def test_reset_counts_from_now_and_keeps_history(micro: Micro) -> None:
    track(micro.base_url, 3)
    micro.wait_total(3)
    before = micro.get("/dashboard/api/summary")["events"]
    micro.reset()
    assert micro.get("/micro/good") == [] and micro.get("/micro/bad") == []
    assert micro.get("/dashboard/api/summary")["events"] == before  # nothing was deleted
    after = track(micro.base_url, 2)
    assert micro.wait_total(2) == {"total": 2, "good": 2, "bad": 0}
    assert {item["event"]["event_id"] for item in micro.get("/micro/good")} == set(after.tracked)
    post_reset = httpx.post(micro.base_url + "/micro/reset", timeout=10)
    assert (post_reset.status_code, post_reset.text) == (200, "Reset completed")
    assert micro.get("/micro/all") == {"total": 0, "good": 0, "bad": 0}


def test_other_micro_paths_and_the_collector_beside_it(micro: Micro) -> None:
    unknown = httpx.get(micro.base_url + "/micro/nothing", timeout=10)
    assert unknown.status_code == 404 and unknown.text.startswith("Supported endpoints:")
    assert httpx.get(micro.base_url + "/health", timeout=10).text == "ok"
    assert httpx.get(micro.base_url + "/dashboard/", timeout=10).status_code == 200
    for ui in ("/micro/ui", "/micro/ui/", "/micro/ui/events"):  # Micro's UI address leads to the dashboard
        moved = httpx.get(micro.base_url + ui, timeout=10)
        assert (moved.status_code, moved.headers["location"]) == (307, "/dashboard/"), ui


def test_iglu_answers_the_schemas_enrich_resolves(micro: Micro) -> None:
    """/micro/iglu asks the resolver enrich uses (here: embedded schemas, Iglu Central's snapshot and the com.acme
    directory, no HTTP): the schema itself, or 404 with every repository's lookup record, as Snowplow Micro does."""
    acme = micro.get("/micro/iglu/com.acme/e2e_event/jsonschema/1-0-0")
    assert acme["self"] == {"vendor": "com.acme", "name": "e2e_event", "format": "jsonschema", "version": "1-0-0"}
    assert acme["properties"]["index"] == {"type": "integer"}
    standard = micro.get("/micro/iglu/com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0")
    assert standard["self"]["name"] == "web_page" and "id" in standard["properties"]

    missing = httpx.get(micro.base_url + "/micro/iglu/com.acme/e2e_event/jsonschema/1-0-9", timeout=10)
    assert missing.status_code == 404
    history = missing.json()["value"]
    assert len(history) >= 2  # the embedded repository and each --iglu directory was asked
    assert all(record["errors"] == [{"error": "NotFound"}] and record["attempts"] == 1 for record in history.values())
    assert all(record["lastAttempt"].endswith("Z") for record in history.values())

    for malformed in ("com.acme/e2e_event/jsonschema/1-0", "com.acme/e2e_event/avro/1-0-0", "com.acme",
                      "com.acme/e2e_event/jsonschema/0-x-0"):
        refused = httpx.get(f"{micro.base_url}/micro/iglu/{malformed}", timeout=10)
        assert refused.status_code == 404 and refused.text.startswith("Schema lookup should be in format"), malformed


def test_micro_is_off_by_default(tmp_path: Path) -> None:
    process, base_url = start_plowline_up(tmp_path, micro=False)
    try:
        assert httpx.get(base_url + "/dashboard/api/config", timeout=10).json()["micro"] is False
        # Without Micro, /micro/... belongs to the collector: no reset happens, no Micro answer comes.
        assert httpx.get(base_url + "/micro/reset", timeout=10).text != "Reset completed"
        assert "Supported endpoints" not in httpx.get(base_url + "/micro/nothing", timeout=10).text
        assert not (tmp_path / "data" / "micro-reset.json").exists()
    finally:
        assert process.stop() == 0, process.log()[-4000:]


def test_micro_answers_nothing_yet_before_the_warehouse_exists(tmp_path: Path) -> None:
    """Just after `plowline up` starts, before the loader has created the warehouse, Micro answers
    empty results (as Snowplow Micro does at start), not an error; bad filters are still refused."""
    settings = Settings(data_dir=tmp_path / "data", micro={"enabled": True})
    app = create_dashboard_app(settings, host="127.0.0.1")

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://micro") as client:
            return [
                await client.get("/micro/all"),
                await client.get("/micro/good"),
                await client.post("/micro/bad", json={"vendor": "com.acme"}),
                await client.post("/micro/good", json={"contexts": [1]}),
                await client.get("/dashboard/api/summary"),
            ]

    every, good, bad, refused, dashboard = asyncio.run(ask())
    assert (every.status_code, every.json()) == (200, {"total": 0, "good": 0, "bad": 0})
    assert (good.status_code, good.json()) == (200, [])
    assert (bad.status_code, bad.json()) == (200, [])
    assert refused.status_code == 400
    assert dashboard.status_code == 503 and "no warehouse" in dashboard.json()["error"]


def test_without_a_duckdb_loader_micro_and_the_dashboard_say_what_to_change(tmp_path: Path) -> None:
    """With only postgres loaded, no DuckDB warehouse will ever appear: Micro's "nothing yet" would be a lie
    that hides every event, so Micro and the dashboard answer 503 saying which setting to change."""
    settings = Settings(data_dir=tmp_path / "data", micro={"enabled": True},
                        storage={"loaders": ["files", "postgres"]})
    app = create_dashboard_app(settings, host="127.0.0.1")

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://micro") as client:
            return [await client.get("/micro/all"), await client.get("/micro/good"),
                    await client.get("/dashboard/api/summary")]

    for answer in asyncio.run(ask()):
        assert answer.status_code == 503, answer.text
        assert 'add "duckdb" to storage.loaders' in answer.json()["error"]
        assert "(files, postgres)" in answer.json()["error"]


def test_iglu_says_when_a_repository_cannot_be_asked(tmp_path: Path) -> None:
    """A registry that is down is not a missing schema: 503 (ask again), not Micro's 404 lookup history."""
    resolver = tmp_path / "resolver.json"
    resolver.write_text(json.dumps({
        "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
        "data": {"cacheSize": 10, "cacheTtl": 60, "repositories": [{
            "name": "Down", "priority": 0, "vendorPrefixes": ["com.acme"],
            "connection": {"http": {"uri": f"http://127.0.0.1:{free_port()}/api"}},
        }]},
    }))
    settings = Settings(data_dir=tmp_path / "data", micro={"enabled": True}, enrich={"resolver": resolver})
    app = create_dashboard_app(settings, host="127.0.0.1")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://micro") as client:
            return await client.get("/micro/iglu/com.acme/anything/jsonschema/1-0-0")

    answer = asyncio.run(ask())
    assert answer.status_code == 503
    assert answer.json()["error"] == "RepositoryUnavailable" and "Down" in answer.json()["message"]
