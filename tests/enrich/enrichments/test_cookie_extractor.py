"""Cookie extractor: Cookie header parsing as HttpCore does it, entities valid against org.ietf/http_cookie."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from plowline.enrich.enrichments.cookie_extractor import CookieExtractor, parse_cookie_pairs
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent

IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central" / "schemas"


def schema(path: str) -> Draft4Validator:
    return Draft4Validator(json.loads((IGLU_CENTRAL / path).read_text()))


HTTP_COOKIE = schema("org.ietf/http_cookie/jsonschema/1-0-0")
CONFIG = schema("com.snowplowanalytics.snowplow/cookie_extractor_config/jsonschema/1-0-0")


class NoAssets:
    def path(self, uri: str, database: str) -> Path:
        raise AssertionError("the cookie extractor reads no files")


def extractor(cookies: list[str]) -> CookieExtractor:
    parameters = {"cookies": cookies}
    CONFIG.validate({"vendor": "com.snowplowanalytics.snowplow", "name": "cookie_extractor_config", "enabled": True,
                     "parameters": parameters})
    return CookieExtractor.from_config(parameters, NoAssets())


def extract(cookies: list[str], *headers: str) -> list[dict[str, Any]]:
    raw = RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, headers=list(headers))
    entities = list(extractor(cookies).enrich(EnrichedEvent(), raw))
    for entity in entities:
        assert entity["schema"] == "iglu:org.ietf/http_cookie/jsonschema/1-0-0"
        HTTP_COOKIE.validate(entity["data"])
    return [entity["data"] for entity in entities]


@pytest.mark.parametrize(("header", "expected"), [
    ("a=1; b=2", [("a", "1"), ("b", "2")]),
    ("  a = 1 ;b=2  ", [("a", "1"), ("b", "2")]),
    ("a=", [("a", "")]),
    ("flag; a=1", [("flag", None), ("a", "1")]),
    ('a="quoted; value"; b=2', [("a", "quoted; value"), ("b", "2")]),
    (r'a="say \"hi\" \\ \x"', [("a", 'say "hi" \\ \\x')]),
    ("a=1, b=2; c=3", [("a", "1")]),
    ("a=x  y   z", [("a", "x y z")]),
    ("sp=c6ef3124-b53a-4b13-a233-0088f79dcbcb", [("sp", "c6ef3124-b53a-4b13-a233-0088f79dcbcb")]),
    ("a=b=c", [("a", "b=c")]),
    ("", []),
], ids=["two-pairs", "whitespace-trimmed", "empty-value", "name-without-value", "quoted-with-semicolon",
        "quoted-escapes", "comma-stops-parsing", "inner-whitespace-collapsed", "uuid-value", "equals-in-value",
        "empty-header"])
def test_header_parsing_follows_httpcore(header: str, expected: list[tuple[str, str | None]]) -> None:
    assert parse_cookie_pairs(header) == expected


def test_only_configured_cookies_become_entities() -> None:
    found = extract(["sp", "session"], "Host: collector.example.com", "Cookie: sp=abc; other=1; session=xyz")
    assert found == [{"name": "sp", "value": "abc"}, {"name": "session", "value": "xyz"}]


@pytest.mark.parametrize("header_name", ["Cookie", "cookie", "COOKIE"], ids=["canonical", "lower", "upper"])
def test_cookie_header_name_is_case_insensitive(header_name: str) -> None:
    assert extract(["sp"], f"{header_name}: sp=1") == [{"name": "sp", "value": "1"}]


def test_cookie_names_are_case_sensitive() -> None:
    assert extract(["sp"], "Cookie: SP=1; Sp=2") == []


def test_every_cookie_header_counts_and_duplicates_are_kept() -> None:
    found = extract(["sp"], "Cookie: sp=1", "X-Other: sp=9", "Cookie: a=2; sp=3")
    assert found == [{"name": "sp", "value": "1"}, {"name": "sp", "value": "3"}]


def test_name_without_value_gives_a_null_value() -> None:
    assert extract(["consent"], "Cookie: consent; sp=1") == [{"name": "consent", "value": None}]


@pytest.mark.parametrize("headers", [(), ("Host: example.com",), ("Cookie",), ("Set-Cookie: sp=1",)],
                         ids=["no-headers", "no-cookie-header", "no-colon", "set-cookie-is-not-cookie"])
def test_nothing_to_extract(headers: tuple[str, ...]) -> None:
    assert extract(["sp"], *headers) == []


def test_empty_cookie_list_extracts_nothing() -> None:
    assert extract([], "Cookie: sp=1") == []


@pytest.mark.parametrize("parameters", [{}, {"cookies": "sp"}, {"cookies": ["sp", 3]}],
                         ids=["missing", "not-a-list", "not-strings"])
def test_bad_config_names_the_parameter_and_the_fix(parameters: dict[str, Any]) -> None:
    with pytest.raises(EnrichmentConfigError) as error:
        CookieExtractor.from_config(parameters, NoAssets())
    assert error.value.key == "cookie_extractor_config.parameters.cookies"
    assert error.value.fix


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.!", min_size=1, max_size=12)


@given(st.lists(st.tuples(_TOKEN, _TOKEN), min_size=1, max_size=8))
def test_plain_pairs_round_trip(pairs: list[tuple[str, str]]) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    assert parse_cookie_pairs(header) == pairs


@given(st.text(alphabet="ab=;, \t\r\n", max_size=30))
def test_fast_split_path_agrees_with_the_character_scanner(header: str) -> None:
    from plowline.enrich.enrichments.cookie_extractor import _parse_quoted

    assert parse_cookie_pairs(header) == _parse_quoted(header)
