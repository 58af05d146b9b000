"""The redirect adapter (r/tp2): EX08, EX20 and Enrich's RedirectAdapter cases."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from plowline.iglu.resolver import Resolver
from tests.enrich.adapters.conftest import failure_messages, raw_events
from tests.enrich.adapters.examples import Example, example

URI = "https://github.com/snowplow/snowplow"
U = "u=" + quote(URI, safe="")
ENTITY = {"schema": "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0", "data": {"uri": URI}}
CONTEXTS_1_0_0 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"


def redirect(querystring: str | None) -> bytes:
    return Example("GET", "/r/tp2", querystring).record()


def parameters(querystring: str | None, resolver: Resolver) -> dict[str, str | None]:
    [event] = raw_events(redirect(querystring), resolver)
    assert (event.vendor, event.version) == ("r", "tp2")
    return event.parameters


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_ex08_without_e_is_an_unstructured_uri_redirect(resolver: Resolver) -> None:
    [event] = raw_events(example("EX08").record(), resolver)
    assert event.parameters == {
        "e": "ue",
        "ue_pr": '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
                 '"data":{"schema":"iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",'
                 '"data":{"uri":"https://github.com/snowplow/snowplow"}}}',
        "tv": "r-tp2",
        "p": "web",
    }


def test_ex20_with_e_the_redirect_becomes_an_entity(resolver: Resolver) -> None:
    [event] = raw_events(example("EX20").record(), resolver)
    assert event.parameters == {
        "e": "se",
        "aid": "ads",
        "co": '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",'
              '"data":[{"schema":"iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",'
              '"data":{"uri":"https://github.com/snowplow/snowplow"}}]}',
        "tv": "r-tp2",
        "p": "web",
    }


def test_entity_is_prepended_to_an_existing_co(resolver: Resolver) -> None:
    other = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"id": 1}}
    co = json.dumps({"schema": CONTEXTS_1_0_0, "data": [other]})
    result = parameters(f"{U}&e=pv&co={quote(co, safe='')}", resolver)
    assert json.loads(str(result["co"])) == {"schema": CONTEXTS_1_0_0, "data": [ENTITY, other]}
    assert result["co"] == json.dumps({"schema": CONTEXTS_1_0_0, "data": [ENTITY, other]}, separators=(",", ":"))


def test_entity_is_prepended_inside_an_existing_cx(resolver: Resolver) -> None:
    other = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"id": "é"}}
    cx = base64.urlsafe_b64encode(json.dumps({"schema": CONTEXTS_1_0_0, "data": [other]}).encode()).decode()
    result = parameters(f"{U}&e=pv&cx={cx}&co=untouched", resolver)
    expected = json.dumps({"schema": CONTEXTS_1_0_0, "data": [ENTITY, other]}, separators=(",", ":"),
                          ensure_ascii=False)
    assert result["cx"] == b64url(expected)
    assert result["co"] == "untouched"


def test_cx_in_the_standard_alphabet_with_padding_is_accepted(resolver: Resolver) -> None:
    cx = base64.b64encode(json.dumps({"schema": CONTEXTS_1_0_0, "data": []}).encode()).decode()
    result = parameters(f"{U}&e=pv&cx={quote(cx, safe='')}", resolver)
    assert result["cx"] == b64url(json.dumps({"schema": CONTEXTS_1_0_0, "data": [ENTITY]}, separators=(",", ":")))


@pytest.mark.parametrize("co", ['{"schema":"x"}', '{"schema":"x","data":{}}', "[1]", '"text"'])
def test_co_without_a_data_array_is_kept_as_it_is(co: str, resolver: Resolver) -> None:
    result = parameters(f"{U}&e=pv&co={quote(co, safe='')}", resolver)
    assert result["co"] == json.dumps(json.loads(co), separators=(",", ":"))


@pytest.mark.parametrize("co", ["co=", "co"], ids=["empty", "no-value"])
def test_empty_co_is_replaced_by_a_new_one(co: str, resolver: Resolver) -> None:
    result = parameters(f"{U}&e=pv&{co}", resolver)
    assert json.loads(str(result["co"])) == {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "data": [ENTITY]}


def test_cx_without_value_counts_as_absent(resolver: Resolver) -> None:
    result = parameters(f"{U}&e=pv&cx", resolver)
    assert result["cx"] is None
    assert json.loads(str(result["co"]))["data"] == [ENTITY]


def test_platform_and_other_parameters_are_kept(resolver: Resolver) -> None:
    assert parameters(f"{U}&p=mob&aid=x&tv=js-3", resolver) == {
        "p": "mob", "aid": "x", "tv": "r-tp2",
        "e": "ue", "ue_pr": '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
                            '"data":{"schema":"iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",'
                            '"data":{"uri":"https://github.com/snowplow/snowplow"}}}',
    }


def test_platform_without_value_stays_null(resolver: Resolver) -> None:
    assert parameters(f"{U}&p", resolver)["p"] is None


def test_e_without_value_still_counts_as_present(resolver: Resolver) -> None:
    result = parameters(f"{U}&e", resolver)
    assert result["e"] is None
    assert "ue_pr" not in result and json.loads(str(result["co"]))["data"] == [ENTITY]


def test_empty_u_is_a_redirect_to_nothing(resolver: Resolver) -> None:
    result = parameters("u=", resolver)
    assert '"data":{"uri":""}' in str(result["ue_pr"])


def im(field: str, value: str | None, expectation: str) -> dict[str, Any]:
    return {"field": field, "value": value, "expectation": expectation}


VIOLATIONS: list[tuple[str, str | None, list[dict[str, Any]]]] = [
    ("no-querystring", None, [im("querystring", None, "empty querystring: not a valid URI redirect")]),
    ("empty-pairs", "&&", [im("querystring", None, "empty querystring: not a valid URI redirect")]),
    ("missing-u", "e=pv&aid", [im("querystring", "e=pv&aid=null", "missing `u` parameter: not a valid URI redirect")]),
    ("u-without-value", "u&x=1", [im("querystring", "u=null&x=1", "missing `u` parameter: not a valid URI redirect")]),
]


@pytest.mark.parametrize(("querystring", "messages"), [(q, m) for _, q, m in VIOLATIONS],
                         ids=[i for i, _, _ in VIOLATIONS])
def test_violations(querystring: str | None, messages: list[dict[str, Any]], resolver: Resolver) -> None:
    assert failure_messages(redirect(querystring), resolver) == messages


def test_co_that_is_not_json(resolver: Resolver) -> None:
    [message] = failure_messages(redirect(f"{U}&e=pv&co=nope"), resolver)
    assert (message["field"], message["value"]) == ("co|cx", "nope")
    assert str(message["error"]).startswith("invalid json: ")


def test_cx_that_is_not_json_reports_the_decoded_text(resolver: Resolver) -> None:
    [message] = failure_messages(redirect(f"{U}&e=pv&cx={b64url('nope')}"), resolver)
    assert (message["field"], message["value"]) == ("co|cx", "nope")
    assert str(message["error"]).startswith("invalid json: ")
