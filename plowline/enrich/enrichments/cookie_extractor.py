"""Cookie extractor: the configured cookies of the request's Cookie headers as org.ietf/http_cookie entities."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

HTTP_COOKIE_SCHEMA = "iglu:org.ietf/http_cookie/jsonschema/1-0-0"
_WHITESPACE = " \t\r\n"  # HttpCore's whitespace: not Python's str.isspace()
_WHITESPACE_RUN = re.compile("[ \t\r\n]+")


def parse_cookie_pairs(value: str) -> list[tuple[str, str | None]]:
    """`name=value` pairs of one Cookie header value, as Apache HttpCore's BasicHeaderValueParser reads them.

    Pairs are `;`-separated; whitespace runs collapse to one space and are trimmed at both ends;
    a value may be a quoted string (quotes removed, `\\"` and `\\\\` unescaped); a name without `=`
    has the value None. Parsing stops at the first `,` outside quotes, as HttpCore's does.
    """
    if '"' in value:
        return _parse_quoted(value)
    # Without quotes the grammar reduces to splitting, which is several times faster than scanning.
    head, comma, _ = value.lstrip(_WHITESPACE).partition(",")
    parts = head.split(";")
    if not comma and not parts[-1]:
        parts.pop()  # HttpCore stops at the end of input, so a final `;` adds no empty pair
    pairs: list[tuple[str, str | None]] = []
    for part in parts:
        name, equals, text = part.partition("=")
        pairs.append((_collapse(name), _collapse(text) if equals else None))
    return pairs


def _collapse(text: str) -> str:
    if "  " in text or "\t" in text or "\r" in text or "\n" in text:
        text = _WHITESPACE_RUN.sub(" ", text)
    return text.strip(" ")


def _parse_quoted(value: str) -> list[tuple[str, str | None]]:
    """The general case, scanning character by character (quoted strings may hold `;` and `,`)."""
    pairs: list[tuple[str, str | None]] = []
    end = len(value)
    position = 0
    while position < end and value[position] in _WHITESPACE:
        position += 1
    while position < end:
        name, position = _token(value, position, "=;,", quotes=False)
        if position >= end:
            pairs.append((name, None))
            break
        delimiter = value[position]
        position += 1
        if delimiter != "=":
            pairs.append((name, None))
            if delimiter == ",":
                break
            continue
        text, position = _token(value, position, ";,", quotes=True)
        pairs.append((name, text))
        if position < end:
            position += 1
            if value[position - 1] == ",":
                break
    return pairs


def _token(value: str, position: int, delimiters: str, *, quotes: bool) -> tuple[str, int]:
    """Read up to the next delimiter; returns the token and the delimiter's position (or the end)."""
    out: list[str] = []
    pending_space = False
    end = len(value)
    while position < end:
        char = value[position]
        if char in delimiters:
            break
        if char in _WHITESPACE:
            pending_space = True
            position += 1
            continue
        if pending_space and out:
            out.append(" ")
        pending_space = False
        if quotes and char == '"':
            position = _quoted(value, position + 1, out)
            continue
        start = position
        while position < end and value[position] not in delimiters and value[position] not in _WHITESPACE \
                and not (quotes and value[position] == '"'):
            position += 1
        out.append(value[start:position])
    return "".join(out), position


def _quoted(value: str, position: int, out: list[str]) -> int:
    """Copy a quoted string's content (opening quote already consumed); return the position after it."""
    escaped = False
    end = len(value)
    while position < end:
        char = value[position]
        position += 1
        if escaped:
            if char not in '"\\':
                out.append("\\")
            out.append(char)
            escaped = False
        elif char == '"':
            break
        elif char == "\\":
            escaped = True
        elif char not in "\r\n":
            out.append(char)
    return position


class CookieExtractor:
    """One `iglu:org.ietf/http_cookie/jsonschema/1-0-0` entity per configured cookie found in a Cookie header.

    Names are compared exactly (case-sensitive); every Cookie header counts, in order, and a cookie
    sent twice yields two entities, as in Snowplow.
    """

    config_name: ClassVar[str] = "cookie_extractor_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/cookie_extractor_config/jsonschema/1-0-*")

    def __init__(self, cookies: Sequence[str]) -> None:
        self.cookies = frozenset(cookies)
        self._names = tuple(self.cookies)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        cookies = parameters.get("cookies")
        if not isinstance(cookies, list) or not all(isinstance(name, str) for name in cookies):
            raise EnrichmentConfigError(
                f"{cls.config_name}.parameters.cookies", f"must be a list of cookie names, got {cookies!r}",
                'list the cookie names to extract, e.g. "cookies": ["sp"]')
        return cls(cookies)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        if not self._names:
            return []
        entities: list[SelfDescribingJson] = []
        for header in raw.headers:
            name, colon, value = header.partition(":")
            if not colon or name.lower() != "cookie":
                continue
            # Most Cookie headers hold none of the wanted names: skip parsing them.
            if not any(wanted in value for wanted in self._names):
                continue
            for cookie, cookie_value in parse_cookie_pairs(value):
                if cookie in self.cookies:
                    entities.append({"schema": HTTP_COOKIE_SCHEMA, "data": {"name": cookie, "value": cookie_value}})
        return entities
