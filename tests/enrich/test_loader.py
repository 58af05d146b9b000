"""The loader: raw record → CollectorRequest, with Snowplow's collector_payload_format_violation messages."""

from __future__ import annotations

import base64
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from plowline.enrich.errors import PayloadFormatViolation
from plowline.enrich.loader import (
    CollectorRequest,
    client_ip,
    collector_payload_json,
    iso_millis,
    java_uuid,
    load_request,
    parse_api,
    parse_querystring,
)
from plowline.payload import CollectorPayload
from tests.enrich.adapters.examples import (
    declares_only_what_it_holds,
    example,
    example_base64,
    thrift_like_records,
)

PREFIX = "could not extract name-value pairs from querystring with encoding UTF-8: "


def payload(**fields: Any) -> CollectorPayload:
    base: dict[str, Any] = {"ip_address": "10.0.0.1", "timestamp": 1389833398278, "encoding": "UTF-8",
                            "collector": "ssc-test", "path": "/i", "querystring": "e=pv"}
    return CollectorPayload(**(base | fields))


def load(**fields: Any) -> CollectorRequest:
    return load_request(payload(**fields).to_thrift())


def violation(**fields: Any) -> dict[str, Any]:
    with pytest.raises(PayloadFormatViolation) as caught:
        load(**fields)
    return caught.value.message


# --- the spec's records ---------------------------------------------------------------------------

def test_ex16_get_i_record() -> None:
    request = load_request(example_base64("EX16"))
    assert (request.vendor, request.version) == ("com.snowplowanalytics.snowplow", "tp1")
    assert request.querystring == [("testParam", "3"), ("testParam2", "4")]
    assert request.raw_querystring == "testParam=3&testParam2=4"
    assert request.timestamp == 1389833398278
    assert request.ip_address == "127.0.0.1"
    assert request.hostname == "127.0.0.1"
    assert request.collector == "ssc-0.0.1-Stdout"
    assert request.encoding == "UTF-8"
    assert request.network_user_id == "c5f3a09f-75f8-4309-bec5-fea560f78455"
    assert request.useragent is not None and request.useragent.startswith("Mozilla/5.0 (X11; Linux x86_64)")
    assert request.referer_uri is None and request.body is None and request.content_type is None
    assert len(request.headers) == 8 and request.headers[0] == "Cookie: sp=c5f3a09f-75f8-4309-bec5-fea560f78455"


def test_ex16_collector_payload_json() -> None:
    request = load_request(example_base64("EX16"))
    assert collector_payload_json(request) == {
        "vendor": "com.snowplowanalytics.snowplow",
        "version": "tp1",
        "querystring": [{"name": "testParam", "value": "3"}, {"name": "testParam2", "value": "4"}],
        "contentType": None,
        "body": None,
        "collector": "ssc-0.0.1-Stdout",
        "encoding": "UTF-8",
        "hostname": "127.0.0.1",
        "timestamp": "2014-01-16T00:49:58.278Z",
        "ipAddress": "127.0.0.1",
        "useragent": request.useragent,
        "refererUri": None,
        "headers": request.headers,
        "networkUserId": "c5f3a09f-75f8-4309-bec5-fea560f78455",
    }


def test_ex17_page_ping_querystring_decodes() -> None:
    request = load_request(example_base64("EX17"))
    assert request.parameters() == {
        "e": "pp", "page": "Asynchronous website/webapp examples for snowplow.js",
        "pp_mix": "0", "pp_max": "0", "pp_miy": "0", "pp_may": "0",
        "co": '{"page":{"page_type":"test","last_updated$tms":1393372800000},"user":{"user_type":"tester"}}',
        "dtm": "1390936938855", "tid": "797743", "vp": "2560x961", "ds": "2560x961", "vid": "7",
        "duid": "3c1757544e39bca4", "p": "mob", "tv": "js-0.13.1", "fp": "2695930803", "aid": "CFe23a",
        "lang": "en-US", "cs": "UTF-8", "tz": "Europe/London", "uid": "alex 123",
        "f_pdf": "0", "f_qt": "1", "f_realp": "0", "f_wma": "0", "f_dir": "0", "f_fla": "1", "f_java": "0",
        "f_gears": "0", "f_ag": "0", "res": "2560x1440", "cd": "24", "cookie": "1",
        "url": "file://file:///Users/alex/Development/dev-environment/demo/1-tracker/events.html/overridden-url/",
    }
    assert request.network_user_id == "75a13583-5c99-40e3-81fc-541084dfc784"
    assert iso_millis(request.timestamp) == "2014-01-28T19:22:20.040Z"
    assert request.ip_address == "10.0.2.2"


def test_ex05_leading_ampersand_is_ignored() -> None:
    request = load_request(example("EX05").record())
    assert request.querystring == [("e", "pv"), ("page", "Root README"),
                                   ("url", "http://github.com/snowplow/snowplow"), ("aid", "snowplow"),
                                   ("p", "web"), ("tv", "no-js-0.1.0")]


# --- path → vendor/version ------------------------------------------------------------------------

PATHS = [
    ("/i", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/i?e=pv", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/ice.png", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/ice.png?e=pv", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/ice.pngfoo", ("com.snowplowanalytics.snowplow", "tp1")),
    ("/com.snowplowanalytics.snowplow/tp2", ("com.snowplowanalytics.snowplow", "tp2")),
    ("com.snowplowanalytics.snowplow/tp2/", ("com.snowplowanalytics.snowplow", "tp2")),
    ("/r/tp2", ("r", "tp2")),
    ("/com.snowplowanalytics.iglu/v1", ("com.snowplowanalytics.iglu", "v1")),
    ("/com.snowplowanalytics.snowplow/i", ("com.snowplowanalytics.snowplow", "i")),
    ("/ice.png/x", ("ice.png", "x")),
    ("/a b/c\nd", ("a b", "c\nd")),
]


@pytest.mark.parametrize(("path", "api"), PATHS, ids=[p for p, _ in PATHS])
def test_path_gives_vendor_and_version(path: str, api: tuple[str, str]) -> None:
    assert parse_api(path) == api
    request = load(path=path)
    assert (request.vendor, request.version) == api


BAD_PATHS = ["", "/", "//", "/i/", "/a/b/c", "/a//b", "i", "/com.acme", "/com.acme/v1//"]


@pytest.mark.parametrize("path", BAD_PATHS, ids=[repr(p) for p in BAD_PATHS])
def test_path_that_is_no_api(path: str) -> None:
    assert violation(path=path) == {
        "payloadField": "path",
        "value": path,
        "expectation": "path does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request",
    }


def test_missing_path() -> None:
    assert violation(path=None) == {
        "payloadField": "path", "value": None, "expectation": "request does not contain a path"}


# --- querystring: strict like java.net.URI, parsed like URLEncodedUtils ---------------------------

PARSED = [
    ("simple", "e=pv&p=web", [("e", "pv"), ("p", "web")]),
    ("empty", "", []),
    ("only-separators", "&&;&", []),
    ("leading-ampersand", "&e=pv", [("e", "pv")]),
    ("empty-name-dropped", "=x&e=pv", [("e", "pv")]),
    ("no-equals-is-null", "e", [("e", None)]),
    ("empty-value", "e=", [("e", "")]),
    ("equals-in-value", "a=b=c", [("a", "b=c")]),
    ("semicolon-separates", "a=1;b=2", [("a", "1"), ("b", "2")]),
    ("duplicates-kept", "a=1&a=2", [("a", "1"), ("a", "2")]),
    ("plus-is-space", "a=x+y", [("a", "x y")]),
    ("escaped-plus", "a=x%2By", [("a", "x+y")]),
    ("utf8-escape", "a=%C3%A9", [("a", "é")]),
    ("lower-hex-escape", "a=%c3%a9", [("a", "é")]),
    ("escaped-name", "%61%62=1", [("ab", "1")]),
    ("invalid-utf8-escape", "a=%FF", [("a", "\ufffd")]),
    ("escaped-ampersand", "a=x%26y", [("a", "x&y")]),
    ("reserved-characters", "a=/?:@$,[]!~*'()-_.", [("a", "/?:@$,[]!~*'()-_.")]),
    ("fragment-is-dropped", "a=1#b=2", [("a", "1")]),
    ("empty-fragment", "a=1#", [("a", "1")]),
    # Java feeds the low byte of a raw non-ASCII character to the decoder: é (U+00E9) → 0xE9 → U+FFFD.
    ("raw-non-ascii", "a=\u00e9", [("a", "\ufffd")]),
    ("raw-cjk", "a=\u4e2d", [("a", "-")]),
]


@pytest.mark.parametrize(("raw", "pairs"), [(r, p) for _, r, p in PARSED], ids=[i for i, _, _ in PARSED])
def test_querystring_parsing(raw: str, pairs: list[tuple[str, str | None]]) -> None:
    assert parse_querystring(raw) == pairs
    assert load(querystring=raw).querystring == pairs


def test_parameters_map_last_occurrence_wins() -> None:
    assert load(querystring="a=1&b=2&a=3").parameters() == {"a": "3", "b": "2"}


ILLEGAL = [
    ("space", "e=p v", "Illegal character in query at index 21"),
    ("double-quote", 'e="', "Illegal character in query at index 20"),
    ("open-brace", "co={", "Illegal character in query at index 21"),
    ("close-brace", "a}", "Illegal character in query at index 19"),
    ("pipe", "a=|", "Illegal character in query at index 20"),
    ("backslash", "a=\\", "Illegal character in query at index 20"),
    ("caret", "a=^", "Illegal character in query at index 20"),
    ("backtick", "a=`", "Illegal character in query at index 20"),
    ("less-than", "a=<", "Illegal character in query at index 20"),
    ("greater-than", "a=>", "Illegal character in query at index 20"),
    ("nbsp", "a=\u00a0", "Illegal character in query at index 20"),
    ("ideographic-space", "a=\u3000", "Illegal character in query at index 20"),
    ("c1-control", "a=\u0085", "Illegal character in query at index 20"),
    ("u0080", "a=\u0080", "Illegal character in query at index 20"),
    ("astral-counts-twice", "\U0001f600=\u2028", "Illegal character in query at index 21"),
    ("percent-alone", "a=%", "Malformed escape pair at index 20"),
    ("percent-one-digit", "a=%4", "Malformed escape pair at index 20"),
    ("percent-non-hex", "a=%zz", "Malformed escape pair at index 20"),
    ("percent-fullwidth-digits", "a=%\uff11\uff11", "Malformed escape pair at index 20"),
    ("second-hash", "a=1#b#c", "Illegal character in fragment at index 23"),
    ("bad-char-in-fragment", "a#{", "Illegal character in fragment at index 20"),
    ("bad-escape-in-fragment", "a#%", "Malformed escape pair at index 20"),
]


@pytest.mark.parametrize(("raw", "reason"), [(r, m) for _, r, m in ILLEGAL], ids=[i for i, _, _ in ILLEGAL])
def test_querystring_illegal_in_a_uri_rejects_the_record(raw: str, reason: str) -> None:
    # stripInstanceEtc drops ASCII controls only: U+0085 and U+2028 stay in the message.
    assert violation(querystring=raw) == {
        "payloadField": "querystring",
        "value": raw,
        "expectation": f"{PREFIX}{reason}: http://localhost/?{raw}",
    }


def test_querystring_message_is_cleaned_like_strip_instance_etc() -> None:
    raw = "a=\tb\x01 "
    assert violation(querystring=raw)["expectation"] == \
        f"{PREFIX}Illegal character in query at index 20: http://localhost/?a=    b"


def test_querystring_error_names_the_java_charset() -> None:
    message = violation(querystring="a b", encoding="latin1")
    assert message["expectation"].startswith(
        "could not extract name-value pairs from querystring with encoding ISO-8859-1: ")


def test_querystring_decoded_in_the_payload_encoding() -> None:
    assert load(querystring="a=%E9", encoding="ISO-8859-1").querystring == [("a", "é")]
    assert load(querystring="a=%E9", encoding="UTF-8").querystring == [("a", "\ufffd")]


@pytest.mark.parametrize("encoding", ["nope", "UTF 8", "", "base64", "rot13", "idna"])
def test_unknown_encoding_is_a_deserialisation_error(encoding: str) -> None:
    assert violation(encoding=encoding) == {"error": f"error deserializing raw event: {encoding}"}


def _java_uri_error(raw: str) -> tuple[str, int] | None:
    """A plain port of java.net.URI's query/fragment scan, to check the loader's regex against."""
    def legal(char: str) -> bool:
        if char.isascii():
            return char.isalnum() or char in ";/?:@&=+$,[]-_.!~*'()"
        code = ord(char)
        return code > 128 and unicodedata.category(char) not in ("Zs", "Zl", "Zp") and not 0x80 <= code <= 0x9F

    def scan(start: int, stop: int, what: str) -> tuple[str, int] | None:
        index = start
        while index < stop:
            char = raw[index]
            if char == "%":
                if index + 3 <= stop and all(c in "0123456789abcdefABCDEF" for c in raw[index + 1:index + 3]):
                    index += 3
                    continue
                return "Malformed escape pair", index
            if not legal(char):
                return f"Illegal character in {what}", index
            index += 1
        return None

    hash_at = raw.find("#")
    end = len(raw) if hash_at < 0 else hash_at
    return scan(0, end, "query") or (scan(hash_at + 1, len(raw), "fragment") if hash_at >= 0 else None)


@settings(max_examples=400)
@given(st.text(alphabet=st.sampled_from([*"aZ09=&;+%#-_.~!*'()/?:@$,[]", *" \"{}|\\^`<>\t\x00\x7f",
                                          "\u00a0", "\u00e9", "\u0085", "\u2028", "\u3000", "\U0001f600",
                                          "A", "f", "F", "g"])))
def test_querystring_check_matches_java_uri(raw: str) -> None:
    expected = _java_uri_error(raw)
    try:
        parse_querystring(raw)
    except PayloadFormatViolation as exc:
        assert expected is not None, raw
        reason, index = expected
        java_index = 18 + len(raw[:index].encode("utf-16-le")) // 2
        assert exc.message["expectation"].startswith(f"{PREFIX}{reason} at index {java_index}: ")
    else:
        assert expected is None, raw


def test_non_ascii_alphabet_matches_unicode_space_separators() -> None:
    from plowline.enrich.loader import _URI_ILLEGAL_CHAR  # the character class under test

    for code in range(0x80, 0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        java_legal = code > 128 and not code <= 0x9F and unicodedata.category(char) not in ("Zs", "Zl", "Zp")
        assert (_URI_ILLEGAL_CHAR.fullmatch(char) is None) == java_legal, hex(code)


# --- network user id ------------------------------------------------------------------------------

UUIDS = [
    ("canonical", "c5f3a09f-75f8-4309-bec5-fea560f78455", "c5f3a09f-75f8-4309-bec5-fea560f78455"),
    ("upper-case", "C5F3A09F-75F8-4309-BEC5-FEA560F78455", "c5f3a09f-75f8-4309-bec5-fea560f78455"),
    ("short-parts", "1-2-3-4-5", "00000001-0002-0003-0004-000000000005"),
    ("plus-sign", "+1-2-3-4-5", "00000001-0002-0003-0004-000000000005"),
    ("overlong-part-masked", "123456789-2-3-4-5", "23456789-0002-0003-0004-000000000005"),
]


@pytest.mark.parametrize(("raw", "canonical"), [(r, c) for _, r, c in UUIDS], ids=[i for i, _, _ in UUIDS])
def test_network_user_id_is_parsed_like_java(raw: str, canonical: str) -> None:
    assert java_uuid(raw) == canonical
    assert load(network_user_id=raw).network_user_id == canonical


NOT_UUIDS = ["", "not-a-uuid", "c5f3a09f75f84309bec5fea560f78455", "c5f3a09f-75f8-4309-bec5-fea560f78455-1",
             "1-2-3-4", "1-2-3-4-", "g-2-3-4-5", "8000000000000000-2-3-4-5", "1-2-3-4-5" + "0" * 28,
             " 1-2-3-4-5", "\u0661-2-3-4-5"]


@pytest.mark.parametrize("raw", NOT_UUIDS, ids=[repr(r) for r in NOT_UUIDS])
def test_network_user_id_not_a_uuid(raw: str) -> None:
    assert violation(network_user_id=raw) == {
        "payloadField": "networkUserId", "value": raw, "expectation": "not valid UUID"}


# --- client IP ------------------------------------------------------------------------------------

IPS = [
    ("no-headers", [], "10.0.0.1"),
    ("x-forwarded-for", ["X-Forwarded-For: 1.2.3.4"], "1.2.3.4"),
    ("x-forwarded-for-chain", ["X-Forwarded-For: 1.2.3.4, 5.6.7.8"], "1.2.3.4"),
    ("x-forwarded-for-any-case", ["x-FORWARDED-for: 1.2.3.4"], "1.2.3.4"),
    ("x-forwarded-for-ipv6", ["X-Forwarded-For: 2001:DB8::1, 1.2.3.4"], "2001:db8::1"),
    ("x-forwarded-for-bracketed", ['X-Forwarded-For: "[2001:db8::1]:4711"'], "2001:db8::1"),
    ("first-x-forwarded-for-wins", ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"], "1.1.1.1"),
    ("x-forwarded-for-beats-forwarded", ["Forwarded: for=9.9.9.9", "X-Forwarded-For: 1.2.3.4"], "1.2.3.4"),
    ("forwarded", ["Host: a", "Forwarded: for=9.9.9.9;proto=http", "Accept: */*"], "9.9.9.9"),
    ("forwarded-quoted-ipv6", ['Forwarded: for="[2001:db8::2]"'], "2001:db8::2"),
    ("first-forwarded-wins", ["Forwarded: for=9.9.9.9", "Forwarded: for=8.8.8.8"], "9.9.9.9"),
    ("unknown-x-forwarded-for-ignored", ["X-Forwarded-For: unknown"], "10.0.0.1"),
    ("x-forwarded-for-without-space", ["X-Forwarded-For:1.2.3.4"], "10.0.0.1"),
    ("other-header", ["X-Real-Ip: 1.2.3.4"], "10.0.0.1"),
]


@pytest.mark.parametrize(("headers", "ip"), [(h, i) for _, h, i in IPS], ids=[i for i, _, _ in IPS])
def test_client_ip(headers: list[str], ip: str) -> None:
    assert client_ip(headers, "10.0.0.1") == ip
    assert load(headers=headers).ip_address == ip


# --- undecodable records --------------------------------------------------------------------------

def test_garbage_is_a_deserialisation_error() -> None:
    with pytest.raises(PayloadFormatViolation) as caught:
        load_request(b"not thrift at all")
    assert caught.value.message["error"].startswith("error deserializing raw event: ")
    assert set(caught.value.message) == {"error"}


def test_wrong_schema() -> None:
    record = payload(schema="iglu:com.acme/CollectorPayload/thrift/1-0-0").to_thrift()
    with pytest.raises(PayloadFormatViolation) as caught:
        load_request(record)
    assert caught.value.message == {
        "error": "verifying record as iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-* failed: "
                 "found iglu:com.acme/CollectorPayload/thrift/1-0-0"}


def test_schema_that_is_not_utf8_is_a_violation() -> None:
    record = payload(schema="iglu:x").to_thrift().replace(b"iglu:x", b"\xff\xfe\xfd\xfc\xfb\xfa")
    with pytest.raises(PayloadFormatViolation):
        load_request(record)


def test_text_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    record = payload(querystring="a=1", user_agent="UA-x", headers=["H: x"]).to_thrift()
    record = record.replace(b"UA-x", b"UA-\xff").replace(b"H: x", b"H: \xfe")
    request = load_request(record)
    assert request.useragent == "UA-\ufffd"
    assert request.headers == ["H: \ufffd"]


def test_undecodable_record_payload_is_base64() -> None:
    assert collector_payload_json(b"\x00\x01garbage") == base64.b64encode(b"\x00\x01garbage").decode()


def test_collector_payload_json_of_a_payload_that_does_not_load() -> None:
    bad = payload(path="/com.acme/v1", querystring="a=1&b={", network_user_id="nope", timestamp=-1)
    assert collector_payload_json(bad) == {
        "vendor": "com.acme", "version": "v1", "querystring": [], "contentType": None, "body": None,
        "collector": "ssc-test", "encoding": "UTF-8", "hostname": None, "timestamp": "1969-12-31T23:59:59.999Z",
        "ipAddress": "10.0.0.1", "useragent": None, "refererUri": None, "headers": [], "networkUserId": None,
    }


# --- timestamps -----------------------------------------------------------------------------------

@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_iso_millis_matches_datetime(millis: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert iso_millis(millis) == f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


def test_iso_millis_beyond_datetime() -> None:
    assert iso_millis(253402300800000) == "10000-01-01T00:00:00.000Z"
    assert iso_millis(-62135596800001) == "0000-12-31T23:59:59.999Z"
    assert iso_millis(2**63 - 1).endswith("Z")
    assert iso_millis(-(2**63)).startswith("-")


# --- never anything but a request or a violation --------------------------------------------------

@settings(max_examples=400)
@given(st.binary(max_size=400) | thrift_like_records())
def test_any_bytes_load_or_violate(record: bytes) -> None:
    assume(declares_only_what_it_holds(record))
    try:
        assert isinstance(load_request(record), CollectorRequest)
    except PayloadFormatViolation as exc:
        assert isinstance(exc.message, dict)


@settings(max_examples=300)
@given(st.data())
def test_corrupted_records_load_or_violate(data: st.DataObject) -> None:
    record = bytearray(example_base64("EX17"))
    for _ in range(data.draw(st.integers(1, 8))):
        record[data.draw(st.integers(0, len(record) - 1))] = data.draw(st.integers(0, 255))
    assume(declares_only_what_it_holds(bytes(record)))
    try:
        request = load_request(bytes(record))
    except PayloadFormatViolation as exc:
        assert isinstance(exc.message, dict)
    else:
        assert isinstance(collector_payload_json(request), dict)
