"""Querystring helpers shared by enrich steps and enrichments: form-decoded parameters and the `_sp` value."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus

__all__ = ["SpParts", "decode_base64url", "parse_sp_param", "query_pairs", "query_params", "split_sp"]

# Snowplow parses querystrings with Apache httpclient's URLEncodedUtils, which splits pairs on both.
_PAIR_SEPARATORS = re.compile(r"[&;]")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_URL_ALPHABET = str.maketrans("-_", "+/")


def _decode(text: str) -> str:
    if "%" in text or "+" in text:
        return unquote_plus(text, encoding="utf-8", errors="replace")
    return text


@lru_cache(maxsize=1024)
def query_pairs(query: str) -> tuple[tuple[str, str | None], ...]:
    """The form-decoded `(name, value)` pairs of a raw querystring, in URL order.

    `+` is a space; a pair without `=` has value None; empty pairs are skipped. Cached because
    several enrichments read the same page URL query for one event.
    """
    pairs: list[tuple[str, str | None]] = []
    for piece in _PAIR_SEPARATORS.split(query) if ";" in query else query.split("&"):
        if not piece:
            continue
        name, equals, value = piece.partition("=")
        if not name:
            continue
        pairs.append((_decode(name), _decode(value) if equals else None))
    return tuple(pairs)


@lru_cache(maxsize=1024)
def query_params(query: str) -> Mapping[str, str]:
    """The form-decoded parameters of a raw querystring as a read-only map.

    A repeated name keeps its last value (Snowplow turns the pair list into a map); a name without
    `=` maps to "" so that it still counts as present.
    """
    return {name: "" if value is None else value for name, value in query_pairs(query)}


def decode_base64url(text: str) -> str:
    """Decode base64url leniently, as Apache commons-codec does: both alphabets, no padding needed,
    characters outside the alphabet ignored, malformed UTF-8 replaced. Never fails."""
    cleaned = _NOT_BASE64.sub("", text.translate(_URL_ALPHABET))
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]  # a lone trailing character carries fewer than 8 bits
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class SpParts:
    """The fields of a cross-domain `_sp` value (spec/enrich.md 2.7). Empty fields are None.

    `timestamp` is left as sent (epoch milliseconds as text): callers decide what a bad one means.
    `user_id`, `source_id` and `reason` are base64url-decoded.
    """

    domain_user_id: str | None
    timestamp: str | None
    session_id: str | None = None
    user_id: str | None = None
    source_id: str | None = None
    source_platform: str | None = None
    reason: str | None = None


def split_sp(value: str) -> SpParts:
    """Split one `_sp` value: `duid.tstamp.sessionId.userId.sourceId.platform.reason`, empties kept."""
    fields: list[str | None] = [part or None for part in value.split(".")]
    fields += [None] * (7 - len(fields))
    user_id, source_id, reason = fields[3], fields[4], fields[6]
    return SpParts(
        domain_user_id=fields[0],
        timestamp=fields[1],
        session_id=fields[2],
        user_id=decode_base64url(user_id) if user_id else None,
        source_id=decode_base64url(source_id) if source_id else None,
        source_platform=fields[5],
        reason=decode_base64url(reason) if reason else None,
    )


def parse_sp_param(query: str) -> SpParts | None:
    """The `_sp` parameter of a raw page URL querystring, split; None when the query has no `_sp`."""
    value = query_params(query).get("_sp")
    if value is None:
        return None
    return split_sp(value)
