"""cross_navigation_config and the shared URL helpers: the `_sp` entity, querystring decoding, base64url."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.enrich.enrichments.cross_navigation import CROSS_NAVIGATION_SCHEMA, CrossNavigation
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.urls import SpParts, decode_base64url, parse_sp_param, query_pairs, query_params, split_sp
from tests.enrich.enrichments.support import NoAssets, config, offline_resolver, raw_event, validate_entity, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow.enrichments/cross_navigation_config/jsonschema/1-0-0"
DUID = "a2b3c4d5-1111-2222-3333-444455556666"
SESSION = "5e1b1bf6-9a0a-4c2c-8f52-2d1d8a1a8f3e"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def navigation() -> CrossNavigation:
    offline_resolver().validate_sdj(config(SCHEMA, None))  # the config has no parameters at all
    return CrossNavigation.from_config({}, NoAssets())


def entity(navigation: CrossNavigation, page: str) -> tuple[dict[str, Any], ...]:
    return tuple(navigation.enrich(web_event(page=page), raw_event()))


def test_extended_format(navigation: CrossNavigation) -> None:
    sp = f"{DUID}.1697175843762.{SESSION}.{b64('user@example.com')}.{b64('shop-app')}.web.{b64('Buy now →')}"
    (found,) = entity(navigation, f"https://shop.example.com/landing?_sp={sp}&x=1")
    assert found == {"schema": CROSS_NAVIGATION_SCHEMA, "data": {
        "domain_user_id": DUID, "timestamp": "2023-10-13T05:44:03.762Z", "session_id": SESSION,
        "user_id": "user@example.com", "source_id": "shop-app", "source_platform": "web", "reason": "Buy now →"}}
    validate_entity(found)


def test_short_format(navigation: CrossNavigation) -> None:
    (found,) = entity(navigation, f"https://x.com/?_sp={DUID}.1697175843762")
    assert found["data"] == {"domain_user_id": DUID, "timestamp": "2023-10-13T05:44:03.762Z", "session_id": None,
                             "user_id": None, "source_id": None, "source_platform": None, "reason": None}
    validate_entity(found)


@pytest.mark.parametrize("page", [
    "https://x.com/", "https://x.com/?a=1", "https://x.com/?_sp=", f"https://x.com/?_sp={DUID}",
    "https://x.com/?_sp=.1697175843762", f"https://x.com/?_sp={DUID}.notanumber", f"https://x.com/#_sp={DUID}.1",
    f"https://x.com/?_sp={DUID}.99999999999999999",
], ids=["no query", "no _sp", "empty _sp", "no timestamp", "no user id", "bad timestamp", "in the fragment",
        "timestamp out of range"])
def test_no_entity(navigation: CrossNavigation, page: str) -> None:
    assert entity(navigation, page) == ()


def test_parameters_are_refused() -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        CrossNavigation.from_config({"x": 1}, NoAssets())
    assert raised.value.key == "parameters.x"


QUERIES = {
    "plain": ("a=1&b=2", (("a", "1"), ("b", "2"))),
    "plus is a space": ("q=hello+world", (("q", "hello world"),)),
    "percent decoding": ("q=%C3%A9t%C3%A9&n%61me=x", (("q", "été"), ("name", "x"))),
    "no equals": ("flag&a=1", (("flag", None), ("a", "1"))),
    "empty value": ("a=", (("a", ""),)),
    "empty pairs skipped": ("&&a=1&", (("a", "1"),)),
    "semicolon separator": ("a=1;b=2", (("a", "1"), ("b", "2"))),
    "bad escape kept": ("a=100%&b=%zz", (("a", "100%"), ("b", "%zz"))),
    "equals in the value": ("a=b=c", (("a", "b=c"),)),
    "no name": ("=x&a=1", (("a", "1"),)),
}


@pytest.mark.parametrize(("query", "expected"), list(QUERIES.values()), ids=list(QUERIES))
def test_query_pairs(query: str, expected: tuple[tuple[str, str | None], ...]) -> None:
    assert query_pairs(query) == expected


def test_query_params_last_value_wins_and_none_is_empty() -> None:
    assert dict(query_params("a=1&a=2&flag")) == {"a": "2", "flag": ""}


def test_parse_sp_param_for_the_pipeline_step() -> None:
    assert parse_sp_param("a=1") is None
    assert parse_sp_param(f"_sp={DUID}.1697175843762") == SpParts(DUID, "1697175843762")
    assert parse_sp_param("_sp=") == SpParts(None, None)


def test_split_sp_keeps_empty_fields_and_ignores_extra_ones() -> None:
    assert split_sp(f"{DUID}..{SESSION}.....extra") == SpParts(DUID, None, SESSION)


@pytest.mark.parametrize(("text", "expected"), [
    ("aGVsbG8", "hello"), ("aGVsbG8=", "hello"), ("4pyTIMOgIGxhIG1vZGU", "✓ à la mode"),
    ("-_8", "\ufffd\ufffd"), ("+/8", "\ufffd\ufffd"), ("aGVs bG8", "hello"), ("a", ""), ("", ""),
], ids=["no padding", "padding", "utf-8", "url alphabet", "standard alphabet", "junk ignored", "lone char",
        "empty"])
def test_decode_base64url(text: str, expected: str) -> None:
    assert decode_base64url(text) == expected


@given(st.text())
def test_base64url_round_trip(text: str) -> None:
    encoded = base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()
    expected = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert decode_base64url(encoded) == expected
    assert decode_base64url(encoded.rstrip("=")) == expected
