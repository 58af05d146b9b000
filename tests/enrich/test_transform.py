"""Tracker parameter conversions (spec/enrich.md 2.4), one row per rule."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.enrich.transform import apply_parameters, decode_base64_json, tsv_safe
from plowline.event import EnrichedEvent

GOOD = [
    ("e", "pv", "event", "page_view"),
    ("e", "se", "event", "struct"),
    ("e", "ev", "event", "struct"),
    ("e", "ue", "event", "unstruct"),
    ("e", "pp", "event", "page_ping"),
    ("e", "tr", "event", "transaction"),
    ("e", "ti", "event", "transaction_item"),
    ("e", "ad", "event", "ad_impression"),
    ("p", "headset", "platform", "headset"),
    ("eid", "C6EF3124-B53A-4B13-A233-0088F79DCBCB", "event_id", "c6ef3124-b53a-4b13-a233-0088f79dcbcb"),
    ("sid", "59ed13b1-a572-4dae-9c8b-1e4d4f1c2b3a", "domain_sessionid", "59ed13b1-a572-4dae-9c8b-1e4d4f1c2b3a"),
    ("tid", "797743", "txn_id", 797743),
    ("vid", "null", "domain_sessionidx", None),
    ("ti_qu", "-2", "ti_quantity", -2),
    ("se_va", "35708.23", "se_value", Decimal("35708.23")),
    ("ev_va", "8000", "se_value", Decimal("8000")),
    ("tr_tt", "1E+3", "tr_total", Decimal("1000")),
    ("f_pdf", "1", "br_features_pdf", True),
    ("cookie", "0", "br_cookies", False),
    ("dtm", "1390936938855", "dvce_created_tstamp", datetime(2014, 1, 28, 19, 22, 18, 855000, UTC)),
    ("ip", "1.2.3.4, 5.6.7.8", "user_ipaddress", "1.2.3.4"),
    ("ip", "1.2.3.4|x", "user_ipaddress", "1.2.3.4"),
    ("page", "a\tb\nc", "page_title", "a    bc"),
    ("aid", "\x00", "app_id", None),
    ("ti_na", "legacy", "ti_name", "legacy"),
    ("url", "https://x.example/p?q=1", "page_url", "https://x.example/p?q=1"),
]


@pytest.mark.parametrize(("param", "value", "field", "expected"), GOOD, ids=[f"{p}={v[:12]}" for p, v, _, _ in GOOD])
def test_conversion(param: str, value: str, field: str, expected: Any) -> None:
    event = EnrichedEvent()
    assert apply_parameters(event, {param: value}) == []
    assert getattr(event, field) == expected


@pytest.mark.parametrize(("param", "value", "first", "second", "expected"), [
    ("res", "2560x1440", "dvce_screenwidth", "dvce_screenheight", (2560, 1440)),
    ("vp", "693x1302", "br_viewwidth", "br_viewheight", (693, 1302)),
    ("ds", "678x8188", "doc_width", "doc_height", (678, 8188)),
])
def test_dimension_pairs(param: str, value: str, first: str, second: str, expected: tuple[int, int]) -> None:
    event = EnrichedEvent()
    assert apply_parameters(event, {param: value}) == []
    assert (getattr(event, first), getattr(event, second)) == expected


BAD = [
    ("e", "s", "Not a valid event type"),
    ("p", "desktop", "Not a valid platform"),
    ("eid", "not-a-uuid", "Not a valid UUID"),
    ("sid", "59ed13b1a5724dae", "Not a valid UUID"),
    ("tid", "1.5", "Cannot be converted to java.lang.Integer"),
    ("vid", "99999999999", "Cannot be converted to java.lang.Integer"),
    ("se_va", "ten", "Cannot be converted to java.math.BigDecimal"),
    ("f_fla", "true", "only 1 or 0"),
    ("res", "100 x 200", "Does not conform to regex"),
    ("dtm", "yesterday", "ms since epoch"),
    ("stm", "999999999999999999", "not Redshift-compatible"),
]


@pytest.mark.parametrize(("param", "value", "message"), BAD, ids=[f"{p}={v}" for p, v, _ in BAD])
def test_bad_values_are_collected_not_raised(param: str, value: str, message: str) -> None:
    errors = apply_parameters(EnrichedEvent(), {param: value, "aid": "still-set"})
    [error] = errors
    assert (error.parameter, error.value) == (param, value)
    assert message in error.message


def test_all_errors_are_reported_together_and_good_fields_kept() -> None:
    event = EnrichedEvent()
    errors = apply_parameters(event, {"e": "zz", "p": "zz", "tid": "x", "aid": "shop", "missing": None})
    assert [e.parameter for e in errors] == ["e", "p", "tid"]
    assert event.app_id == "shop"


def test_network_userid_precedence_tnuid_last() -> None:
    event = EnrichedEvent(network_userid="from-cookie")
    apply_parameters(event, {"tnuid": "from-tnuid", "nuid": "from-nuid"})
    assert event.network_userid == "from-tnuid"
    other = EnrichedEvent(network_userid="from-cookie")
    apply_parameters(other, {"nuid": "from-nuid"})
    assert other.network_userid == "from-nuid"


@pytest.mark.parametrize("encoded", ["eyJhIjoiYj8-In0=", "eyJhIjoiYj8-In0", "eyJhIjoiYj8+In0=", "eyJhIjoiYj8+In0"])
def test_base64_any_alphabet_padding_optional(encoded: str) -> None:
    assert decode_base64_json(encoded) == '{"a":"b?>"}'


@given(st.text())
def test_tsv_safe_never_leaves_tabs_or_newlines(value: str) -> None:
    cleaned = tsv_safe(value)
    assert cleaned is None or ("\t" not in cleaned and "\n" not in cleaned and "\r" not in cleaned)
