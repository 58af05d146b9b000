"""Any CollectorPayload through load_request and its adapter: raw events or a failure value, nothing else."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from plowline.enrich.adapters import adapter_for
from plowline.enrich.errors import AdapterFailure, PayloadFormatViolation
from plowline.enrich.loader import collector_payload_json, load_request
from plowline.enrich.raw_event import RawEvent
from plowline.iglu.resolver import Resolver
from plowline.payload import CollectorPayload
from tests.enrich.adapters.examples import NUID

PATHS = ["/i", "/ice.png", "/com.snowplowanalytics.snowplow/tp1", "/com.snowplowanalytics.snowplow/tp2",
         "/r/tp2", "/com.snowplowanalytics.iglu/v1", "/com.acme/v1"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
                 "application/x-www-form-urlencoded", "text/plain"]
NAMES = ["e", "p", "tv", "u", "co", "cx", "schema", "aid", "nuid", "ue_pr", "x", "é"]
SCHEMAS = ["iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
           "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-0",
           "iglu:com.snowplowanalytics.snowplow/social_interaction/jsonschema/1-0-0",
           "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "iglu:com.acme/x/jsonschema/1-0-0"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=5),
                                                                       children, max_size=4),
    max_leaves=12,
)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten, else `rare`: most payloads should get past the loader."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 0 else usual)


def _sdj(schema: str, data: Any) -> str:
    return orjson.dumps({"schema": schema, "data": data}).decode()


def _querystring(pairs: list[tuple[str, str | None]], junk: str) -> str:
    text = "&".join(quote(name, safe="") + ("" if value is None else "=" + quote(value, safe="")) for name, value in pairs)
    return text + junk


events = st.lists(st.dictionaries(st.sampled_from(["e", "p", "tv", "aid", "url", "cx", "co", "zz"]),
                                  st.text(max_size=8) | json_values, max_size=5), max_size=3)
bodies = st.none() | st.text(max_size=60) | json_values.map(lambda v: orjson.dumps(v).decode()) | st.builds(
    _sdj, st.sampled_from(SCHEMAS), events | json_values)
pairs = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=4),
                           st.none() | st.text(max_size=12) | bodies.map(lambda b: b or "")
                           | st.just(base64.urlsafe_b64encode(b'{"schema":"x","data":[]}').decode())), max_size=6)
clean_querystrings = st.builds(_querystring, pairs, st.just(""))
querystrings = mostly(
    st.none() | clean_querystrings,
    st.text(alphabet="abcepu=&;%+#", max_size=30) | st.builds(_querystring, pairs, st.sampled_from(["&", "#f", " ", "{"])),
)
payloads = st.builds(
    CollectorPayload,
    ip_address=st.text(max_size=20),
    timestamp=st.integers(-(2**63), 2**63 - 1),
    encoding=mostly(st.just("UTF-8"), st.sampled_from(["ISO-8859-1", "utf-16", "nope"])),
    collector=st.text(max_size=10),
    user_agent=st.none() | st.text(max_size=20),
    referer_uri=st.none() | st.text(max_size=20),
    path=mostly(st.sampled_from(PATHS), st.none() | st.text(max_size=20)),
    querystring=querystrings,
    body=bodies,
    headers=st.none() | st.lists(st.sampled_from(["X-Forwarded-For: 1.2.3.4", "Forwarded: for=[::1]"])
                                 | st.text(max_size=30), max_size=4),
    content_type=st.none() | st.sampled_from(CONTENT_TYPES) | st.text(max_size=10),
    hostname=st.none() | st.text(max_size=10),
    network_user_id=mostly(st.sampled_from([None, NUID, NUID.upper()]), st.text(max_size=36)),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads)
def test_any_payload_gives_raw_events_or_a_failure(payload: CollectorPayload, resolver: Resolver) -> None:
    try:
        request = load_request(payload.to_thrift())
    except PayloadFormatViolation as violation:
        event("payload format violation")
        orjson.dumps(violation.message)
        return
    orjson.dumps(collector_payload_json(request))
    try:
        made = adapter_for(request.vendor, request.version).to_raw_events(request, resolver)
    except AdapterFailure as failure:
        event(f"adapter failure {request.vendor}/{request.version}")
        assert failure.messages
        assert all(isinstance(message, dict) for message in failure.messages)
        orjson.dumps(failure.messages)
        return
    event(f"raw events {request.vendor}/{request.version}")
    assert made
    for raw in made:
        assert isinstance(raw, RawEvent)
        assert all(isinstance(name, str) and (value is None or isinstance(value, str))
                   for name, value in raw.parameters.items())
        assert raw.timestamp == request.timestamp and raw.user_id == request.network_user_id
        orjson.dumps(raw.parameters)


tp2_events = st.lists(
    st.fixed_dictionaries({"e": st.sampled_from(["pv", "pp", "se"]), "p": st.just("web"), "tv": st.text(max_size=8)},
                          optional={"aid": st.text(max_size=8), "url": st.text(max_size=12), "uid": st.text(max_size=8),
                                    "co": st.text(max_size=8)}),
    min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(items=tp2_events, querystring=pairs, version=st.sampled_from(["1-0-0", "1-0-3", "1-0-4"]))
def test_tp2_batch_is_one_event_per_element_with_the_querystring_on_top(
    items: list[dict[str, str]], querystring: list[tuple[str, str | None]], version: str, resolver: Resolver
) -> None:
    body = _sdj(f"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/{version}", items)
    payload = CollectorPayload(ip_address="1.2.3.4", timestamp=0, encoding="UTF-8", collector="c",
                               path="/com.snowplowanalytics.snowplow/tp2", querystring=_querystring(querystring, ""),
                               body=body, content_type="application/json")
    request = load_request(payload.to_thrift())
    made = adapter_for(request.vendor, request.version).to_raw_events(request, resolver)
    on_top = dict(request.querystring)
    assert [raw.parameters for raw in made] == [{**item, **on_top} for item in items]
