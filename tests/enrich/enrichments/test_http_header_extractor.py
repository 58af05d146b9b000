"""HTTP header extractor: Java regex semantics (whole-name match), entities valid against org.ietf/http_header."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from plowline.enrich.enrichments.http_header_extractor import HttpHeaderExtractor, JavaRegexError, java_regex_to_python
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent

IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central" / "schemas"
HTTP_HEADER = Draft4Validator(json.loads((IGLU_CENTRAL / "org.ietf/http_header/jsonschema/1-0-0").read_text()))
CONFIG = Draft4Validator(json.loads(
    (IGLU_CENTRAL / "com.snowplowanalytics.snowplow.enrichments/http_header_extractor_config/jsonschema/1-0-0").read_text()))

HEADERS = [
    "Host: collector.example.com",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
    "X-Forwarded-For: 203.0.113.7, 10.0.0.1",
    "X-Forwarded-Proto: https",
    "Cookie: sp=abc",
    "Accept:   */*   ",
]


class NoAssets:
    def path(self, uri: str, database: str) -> Path:
        raise AssertionError("the header extractor reads no files")


def extractor(pattern: str) -> HttpHeaderExtractor:
    parameters = {"headersPattern": pattern}
    CONFIG.validate({"vendor": "com.snowplowanalytics.snowplow.enrichments", "name": "http_header_extractor_config",
                     "enabled": True, "parameters": parameters})
    return HttpHeaderExtractor.from_config(parameters, NoAssets())


def extract(pattern: str, headers: list[str] = HEADERS) -> list[dict[str, Any]]:
    raw = RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, headers=headers)
    entities = list(extractor(pattern).enrich(EnrichedEvent(), raw))
    for entity in entities:
        assert entity["schema"] == "iglu:org.ietf/http_header/jsonschema/1-0-0"
        HTTP_HEADER.validate(entity["data"])
    return [entity["data"] for entity in entities]


def names(pattern: str) -> list[str]:
    return [header["name"] for header in extract(pattern)]


def test_docs_example_extracts_every_header_trimmed() -> None:
    assert extract(".*") == [
        {"name": "Host", "value": "collector.example.com"},
        {"name": "User-Agent", "value": "Mozilla/5.0 (X11; Linux x86_64)"},
        {"name": "X-Forwarded-For", "value": "203.0.113.7, 10.0.0.1"},
        {"name": "X-Forwarded-Proto", "value": "https"},
        {"name": "Cookie", "value": "sp=abc"},
        {"name": "Accept", "value": "*/*"},
    ]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("Host", ["Host"]),
    ("Hos", []),
    ("host", []),
    ("(?i)host", ["Host"]),
    ("X-Forwarded-.*", ["X-Forwarded-For", "X-Forwarded-Proto"]),
    ("X-Forwarded-For|Host", ["Host", "X-Forwarded-For"]),
    ("X-(?i)forwarded-for|host", ["Host", "X-Forwarded-For"]),
    ("\\QX-Forwarded-For\\E", ["X-Forwarded-For"]),
    ("\\p{Upper}\\p{Lower}+", ["Host", "Cookie", "Accept"]),
    ("[\\p{Alpha}-]+-\\p{Alpha}+", ["User-Agent", "X-Forwarded-For", "X-Forwarded-Proto"]),
    ("(?<first>[A-Z])-.*", ["X-Forwarded-For", "X-Forwarded-Proto"]),
    ("X-\\w++-\\w+", ["X-Forwarded-For", "X-Forwarded-Proto"]),
    ("(?>Host|Hos)", ["Host"]),
    ("Cook\\x{69}e", ["Cookie"]),
], ids=["exact", "whole-name-only", "case-sensitive", "inline-case-insensitive", "prefix", "alternation",
        "mid-pattern-flag-scopes-to-its-branch", "quoted-literal", "posix-classes", "posix-class-in-set",
        "named-group", "possessive", "atomic-group", "hex-escape"])
def test_java_regex_semantics(pattern: str, expected: list[str]) -> None:
    assert names(pattern) == expected


@pytest.mark.parametrize(("java", "python"), [
    ("(?<name>a)\\k<name>", "(?P<name>a)(?P=name)"),
    ("a(?i)b|c", "a(?i:b)|(?i:c)"),
    ("(x(?i)y|z)w", "(x(?i:y)|(?i:z))w"),
    ("\\Qa.b\\E", "a\\.b"),
    ("\\p{Digit}\\P{Digit}", "[0-9][^0-9]"),
    ("a\\z", "a\\Z"),
    ("[a&b|c]", "[a\\&b\\|c]"),
    ("\\e\\cA", "\\x1b\x01"),
], ids=["named-group-and-backref", "flag-through-alternation", "flag-inside-group", "quote", "posix-negated",
        "end-of-input", "set-operators-escaped", "escape-and-control"])
def test_translation(java: str, python: str) -> None:
    from plowline.enrich.enrichments.http_header_extractor import _Translator

    assert _Translator(java).run()[0] == python


def test_java_classes_stay_ascii_like_java() -> None:
    assert java_regex_to_python("\\w+").fullmatch("é") is None
    assert java_regex_to_python("(?U)\\w+").fullmatch("é") is not None


@pytest.mark.parametrize("pattern", ["[a-z&&[^e]]", "[a[b]]", "\\p{L}+", "\\Gx", "(unclosed", "closed)", "[abc", "a{"],
                         ids=["intersection", "union", "unicode-property", "G-anchor", "unclosed-group",
                              "unbalanced-paren", "unclosed-class", "bad-quantifier"])
def test_unsupported_or_invalid_java_regex_is_a_config_error(pattern: str) -> None:
    if pattern == "a{":  # Java rejects it; Python reads a literal brace, which is harmless
        java_regex_to_python(pattern)
        return
    with pytest.raises(JavaRegexError):
        java_regex_to_python(pattern)
    with pytest.raises(EnrichmentConfigError) as error:
        HttpHeaderExtractor.from_config({"headersPattern": pattern}, NoAssets())
    assert error.value.key == "http_header_extractor_config.parameters.headersPattern"
    assert pattern in error.value.problem and error.value.fix


@pytest.mark.parametrize("parameters", [{}, {"headersPattern": [".*"]}, {"headersPattern": 3}],
                         ids=["missing", "list-as-in-old-docs", "not-a-string"])
def test_bad_config_names_the_parameter_and_the_fix(parameters: dict[str, Any]) -> None:
    with pytest.raises(EnrichmentConfigError) as error:
        HttpHeaderExtractor.from_config(parameters, NoAssets())
    assert error.value.key == "http_header_extractor_config.parameters.headersPattern"
    assert error.value.fix


def test_lines_without_colon_are_skipped_and_empty_values_kept() -> None:
    assert extract(".*", ["garbage", "X-Empty:", "X-Colon: a:b"]) == [
        {"name": "X-Empty", "value": ""}, {"name": "X-Colon", "value": "a:b"}]


def test_verdict_cache_is_bounded_and_consistent() -> None:
    enrichment = extractor("X-.*")
    for index in range(5000):
        raw = RawEvent("com.snowplowanalytics.snowplow", "tp2", {}, headers=[f"X-H{index}: v", f"Y-H{index}: v"])
        assert [e["data"]["name"] for e in enrichment.enrich(EnrichedEvent(), raw)] == [f"X-H{index}"]
    assert len(enrichment._verdicts) <= 4096


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20)


@given(_NAME, _NAME)
def test_plain_literal_patterns_match_exactly_as_re_fullmatch(pattern: str, name: str) -> None:
    assert (java_regex_to_python(re.escape(pattern)).fullmatch(name) is not None) == (pattern == name)
