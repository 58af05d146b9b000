"""The whole enrichment of a record: every protocol example's outcome, bad-row routing, and invariants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plowline import badrows
from plowline.enrich.assets import LocalAssetStore
from plowline.enrich.enrichment_config import load_enrichments
from plowline.enrich.pipeline import Outcome, Pipeline
from plowline.event import EnrichedEvent
from plowline.iglu.repositories import EmbeddedRepository, LocalRepository
from plowline.iglu.resolver import Resolver
from plowline.payload import CollectorPayload
from tests.enrich.adapters.examples import NUID, example, example_base64, thrift_like_records

IGLU_CENTRAL = Path(__file__).resolve().parents[3] / "shared" / "iglu-central"
CUSTOM = Path(__file__).resolve().parents[1] / "data" / "iglu-custom"
ETL = datetime(2026, 1, 2, 3, 4, 5, 678000, UTC)
BADROWS = "iglu:com.snowplowanalytics.snowplow.badrows/"


def make_pipeline(tmp_path: Path, *repos: Path) -> Pipeline:
    resolver = Resolver([], preferred=[EmbeddedRepository(), *(LocalRepository(repo) for repo in repos)])
    enrichments = load_enrichments(None, resolver, LocalAssetStore(tmp_path, tmp_path / "assets"))
    return Pipeline(resolver, enrichments, badrows.Processor("plowline-enrich", "test"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    built = make_pipeline(tmp_path_factory.mktemp("assets"), IGLU_CENTRAL, CUSTOM)
    yield built
    built.resolver.close()


@pytest.fixture(scope="module")
def bare_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Only the embedded schemas and iglu-central: users' own schemas do not resolve."""
    built = make_pipeline(tmp_path_factory.mktemp("assets"), IGLU_CENTRAL)
    yield built
    built.resolver.close()


def run(pipeline: Pipeline, name: str, **changes: Any) -> Outcome:
    outcome = pipeline.process(example(name).record(**changes), ETL)
    assert outcome.events_in == len(outcome.good) + len(outcome.bad) + outcome.dropped
    return outcome


def single_good(outcome: Outcome) -> EnrichedEvent:
    assert outcome.bad == [], orjson.dumps(outcome.bad)[:2000]
    [event] = outcome.good
    return event


def bad_type(outcome: Outcome) -> list[str]:
    return [row["schema"].removeprefix(BADROWS).split("/")[0] for row in outcome.bad]


def test_ex01_self_describing_event(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX01"))
    assert event.event == "unstruct"
    assert event.event_id == "5a305bf5-32fc-40d9-b0e8-66052f0f2c95"
    assert event.unstruct_event == {"schema": "iglu:com.my_company/viewed_product/jsonschema/1-0-0",
                                    "data": {"product_id": "ASO01043", "price": 49.95}}
    assert (event.event_vendor, event.event_name, event.event_format, event.event_version) == (
        "com.my_company", "viewed_product", "jsonschema", "1-0-0")
    assert event.domain_sessionid == "be9520e7-16a5-4d4e-afa1-8e269f99a1cf"
    assert event.network_userid == NUID
    assert event.v_etl == "plowline-enrich-test"
    assert event.etl_tstamp == ETL


def test_ex01_with_an_unknown_schema_is_a_schema_violation(bare_pipeline: Pipeline) -> None:
    outcome = run(bare_pipeline, "EX01")
    assert bad_type(outcome) == ["schema_violations"]
    [message] = outcome.bad[0]["data"]["failure"]["messages"]
    assert message["schemaKey"] == "iglu:com.my_company/viewed_product/jsonschema/1-0-0"
    assert message["error"]["error"] == "ResolutionError"
    assert outcome.bad[0]["data"]["payload"]["raw"]["vendor"] == "com.snowplowanalytics.snowplow"


def test_ex02_custom_entity_in_cx(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX02"))
    assert event.contexts == [{"schema": "iglu:com.my_company/user/jsonschema/1-0-0",
                               "data": {"my_company_user_id": "9999xyz"}}]


def test_ex03_page_view_fields(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX03"))
    assert event.event == "page_view"
    assert event.page_url == "https://snowplow.io/"
    assert event.page_title == "Snowplow: behavioral data creation leader"
    assert (event.br_viewwidth, event.br_viewheight, event.doc_width, event.doc_height) == (693, 1302, 678, 8188)
    assert (event.dvce_screenwidth, event.dvce_screenheight, event.domain_sessionidx) == (3440, 1440, 29)
    assert event.os_timezone == "Europe/London"
    tsv = event.to_tsv().split("\t")
    assert tsv[4] == "2022-10-10 10:42:34.084"  # dvce_created_tstamp
    assert tsv[119] == "2022-10-10 10:42:34.084"  # dvce_sent_tstamp
    assert (event.page_urlscheme, event.page_urlhost, event.page_urlport, event.page_urlpath) == (
        "https", "snowplow.io", 443, "/")


def test_ex04_empty_cx_is_treated_as_absent(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX04"))
    assert event.event == "page_ping"
    assert event.contexts is None


def test_ex05_pixel_with_leading_ampersand(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX05"))
    assert (event.event, event.page_title, event.app_id, event.platform, event.v_tracker) == (
        "page_view", "Root README", "snowplow", "web", "no-js-0.1.0")
    assert event.page_url == "http://github.com/snowplow/snowplow"


def test_ex06_pixel_self_describing_event(pipeline: Pipeline, bare_pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX06"))
    assert (event.event, event.event_vendor, event.event_name, event.event_version) == (
        "unstruct", "com.acme", "email_open", "1-0-0")
    assert bad_type(run(bare_pipeline, "EX06")) == ["schema_violations"]


def test_ex07_plain_co_entity(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX07"))
    assert event.contexts is not None
    assert event.contexts[0]["schema"] == "iglu:com.acme/email_open/jsonschema/1-0-0"


def test_ex08_redirect_becomes_uri_redirect_event(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX08"))
    assert (event.event, event.v_tracker, event.platform) == ("unstruct", "r-tp2", "web")
    assert event.unstruct_event == {"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",
                                    "data": {"uri": "https://github.com/snowplow/snowplow"}}


@pytest.mark.parametrize(("name", "platform"), [("EX09", "mob"), ("EX10", "app"), ("EX11", "srv")])
def test_iglu_webhook_examples(pipeline: Pipeline, name: str, platform: str) -> None:
    event = single_good(run(pipeline, name))
    assert (event.event, event.v_tracker, event.platform) == ("unstruct", "com.snowplowanalytics.iglu-v1", platform)
    assert event.unstruct_event == {"schema": "iglu:com.snowplowanalytics.snowplow/social_interaction/jsonschema/1-0-0",
                                    "data": {"network": "twitter", "action": "retweet"}}


def test_ex16_raw_record_without_event_type_fails_enrichment(pipeline: Pipeline) -> None:
    outcome = pipeline.process(example_base64("EX16"), ETL)
    assert bad_type(outcome) == ["enrichment_failures"]
    assert outcome.bad[0]["data"]["payload"]["enriched"]["collector_tstamp"] == "2014-01-16 00:49:58.278"


def test_ex17_legacy_context_format_is_a_schema_violation(pipeline: Pipeline) -> None:
    outcome = pipeline.process(example_base64("EX17"), ETL)
    assert bad_type(outcome) == ["schema_violations"]
    enriched = outcome.bad[0]["data"]["payload"]["enriched"]
    assert enriched["page_title"] == "Asynchronous website/webapp examples for snowplow.js"
    assert enriched["user_id"] == "alex 123"


def test_ex18_invalid_entity_is_a_schema_violation(pipeline: Pipeline) -> None:
    outcome = run(pipeline, "EX18")
    assert bad_type(outcome) == ["schema_violations"]
    reports = [report for message in outcome.bad[0]["data"]["failure"]["messages"]
               for report in message["error"].get("dataReports", [])]
    assert any(report["path"] == "$.quantity" for report in reports)
    assert outcome.bad[0]["data"]["payload"]["raw"]["parameters"]


def test_ex19_merged_parameters_fail_atomic_parsing(pipeline: Pipeline) -> None:
    outcome = run(pipeline, "EX19")
    assert outcome.events_in == 3
    assert bad_type(outcome) == ["schema_violations"] * 3
    reports = outcome.bad[0]["data"]["failure"]["messages"][0]["error"]["dataReports"]
    assert {report["path"] for report in reports} >= {"e", "p"}
    assert {report["keyword"] for report in reports} == {"atomic_field_parse_error"}


def test_ex20_redirect_with_event_keeps_uri_as_entity(pipeline: Pipeline) -> None:
    event = single_good(run(pipeline, "EX20"))
    assert (event.event, event.app_id, event.se_category) == ("struct", "ads", None)
    assert event.contexts == [{"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",
                               "data": {"uri": "https://github.com/snowplow/snowplow"}}]


def payload(querystring: str = "", body: str | None = None, path: str = "/i", **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "ip_address": "203.0.113.9", "timestamp": 1700000000000, "encoding": "UTF-8", "collector": "plowline-test",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "path": path, "querystring": querystring, "body": body, "network_user_id": NUID, "headers": [],
    }
    values.update(fields)
    if body is not None:
        values.setdefault("content_type", "application/json")
    return CollectorPayload(**values).to_thrift()


def test_python_tracker_sid_must_be_a_uuid(pipeline: Pipeline) -> None:
    outcome = pipeline.process(payload("e=pv&p=mob&tv=py-1.1.0&sid=59ed13b1a5724dae"), ETL)
    assert bad_type(outcome) == ["schema_violations"]
    [report] = outcome.bad[0]["data"]["failure"]["messages"][0]["error"]["dataReports"]
    assert report["path"] == "sid"


def test_struct_event_fields_and_derived_values(pipeline: Pipeline) -> None:
    query = ("e=se&se_ca=Ecomm&se_ac=add-to-basket&se_la=dog-skateboarding-video&se_pr=hd&se_va=13.99&tv=py-1.1.0"
             "&p=web&url=https%3A%2F%2Fshop.example%2F%3Futm_source%3Dnews%26utm_medium%3Demail%26utm_campaign%3Dspring"
             "&refr=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Ddog%2Bvideo&dtm=1700000000000&stm=1700000000500")
    event = single_good(pipeline.process(payload(query), ETL))
    assert (event.se_category, event.se_action, event.se_label, event.se_property, event.se_value) == (
        "Ecomm", "add-to-basket", "dog-skateboarding-video", "hd", Decimal("13.99"))
    assert (event.event_vendor, event.event_name) == ("com.google.analytics", "event")
    assert (event.mkt_source, event.mkt_medium, event.mkt_campaign) == ("news", "email", "spring")
    assert (event.refr_medium, event.refr_source, event.refr_term) == ("search", "Google", "dog video")
    assert event.derived_tstamp == datetime(2023, 11, 14, 22, 13, 19, 500000, UTC)
    assert event.br_family == "Chrome" and event.os_family == "Linux"
    assert event.event_fingerprint is not None and len(event.event_fingerprint) == 32
    ua_context = [c for c in event.derived_contexts or [] if "ua_parser_context" in c["schema"]]
    assert ua_context and ua_context[0]["data"]["useragentFamily"] == "Chrome"


def test_collector_ip_and_user_agent_and_tracker_override(pipeline: Pipeline) -> None:
    event = single_good(pipeline.process(payload("e=pv&p=web&tv=t&ip=198.51.100.4&ua=Custom%2F1.0"), ETL))
    assert event.user_ipaddress == "198.51.100.4"
    assert event.useragent == "Custom/1.0"


def test_field_too_long_is_a_schema_violation(pipeline: Pipeline) -> None:
    outcome = pipeline.process(payload("e=pv&p=web&tv=t&aid=" + "a" * 300), ETL)
    assert bad_type(outcome) == ["schema_violations"]
    [report] = outcome.bad[0]["data"]["failure"]["messages"][0]["error"]["dataReports"]
    assert report == {"message": "Field is longer than maximum allowed size 255", "path": "app_id",
                      "keyword": "atomic_field_length_exceeded", "targets": []}


def test_payload_format_violation_and_adapter_failures(pipeline: Pipeline) -> None:
    garbage = pipeline.process(b"not thrift at all", ETL)
    assert bad_type(garbage) == ["collector_payload_format_violation"]
    assert garbage.bad[0]["data"]["payload"] == "bm90IHRocmlmdCBhdCBhbGw="
    unknown = pipeline.process(payload("a=b", path="/com.unknown/v9"), ETL)
    assert bad_type(unknown) == ["adapter_failures"]
    tp2 = pipeline.process(payload("", body="{}", path="/com.snowplowanalytics.snowplow/tp2",
                                   content_type="text/plain"), ETL)
    assert bad_type(tp2) == ["tracker_protocol_violations"]


def test_every_bad_row_keeps_what_is_needed_to_recover(pipeline: Pipeline) -> None:
    outcome = pipeline.process(payload("e=pv&p=nope&tv=t&aid=keep-me"), ETL)
    raw = outcome.bad[0]["data"]["payload"]["raw"]
    assert {"name": "aid", "value": "keep-me"} in raw["parameters"]
    assert raw["userId"] == NUID and raw["ipAddress"] == "203.0.113.9"


@settings(max_examples=150)
@given(record=st.binary(max_size=300) | thrift_like_records())
def test_any_bytes_give_one_outcome_per_event(pipeline: Pipeline, record: bytes) -> None:
    outcome = pipeline.process(record, ETL)
    assert outcome.events_in >= 1
    assert outcome.events_in == len(outcome.good) + len(outcome.bad) + outcome.dropped
    for row in outcome.bad:
        orjson.dumps(row)


event_values = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


@settings(max_examples=100)
@given(events=st.lists(st.dictionaries(st.sampled_from(["e", "p", "tv", "aid", "eid", "url", "se_va", "tid", "res",
                                                          "dtm", "co", "ue_pr", "page", "refr", "sid", "vid"]),
                                        event_values, max_size=8), min_size=1, max_size=5))
def test_tp2_batches_count_every_event(pipeline: Pipeline, events: list[dict[str, str]]) -> None:
    body = orjson.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                         "data": [{"e": "pv", "p": "web", "tv": "t", **event} for event in events]}).decode()
    outcome = pipeline.process(payload("", body=body, path="/com.snowplowanalytics.snowplow/tp2"), ETL)
    assert outcome.events_in in (len(events), 1)  # 1 when the whole payload is refused
    assert outcome.events_in == len(outcome.good) + len(outcome.bad) + outcome.dropped
    for event in outcome.good:
        assert EnrichedEvent.from_tsv(event.to_tsv()).to_tsv() == event.to_tsv()


def test_events_without_eid_get_the_same_id_when_a_record_is_replayed(pipeline: Pipeline) -> None:
    record = payload("e=pv&p=web&tv=t")
    first = single_good(pipeline.process(record, ETL))
    again = single_good(pipeline.process(record, ETL))
    other = single_good(pipeline.process(payload("e=pv&p=web&tv=u"), ETL))
    assert first.event_id == again.event_id != other.event_id
    assert first.event_id is not None and first.event_id[14] == "4"  # a version-4 UUID
