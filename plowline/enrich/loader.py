"""Raw record → CollectorRequest: Thrift decode, path → vendor/version, strict querystring, client IP, nuid."""

from __future__ import annotations

import ast
import base64
import codecs
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, overload

from plowline.enrich.errors import PayloadFormatViolation
from plowline.enrich.raw_event import RawEvent
from plowline.errors import PayloadDecodeError
from plowline.payload import CollectorPayload

__all__ = [
    "CollectorRequest",
    "client_ip",
    "collector_payload_json",
    "iso_millis",
    "java_uuid",
    "load_request",
    "parse_api",
    "parse_form",
    "parse_querystring",
]

SNOWPLOW_VENDOR = "com.snowplowanalytics.snowplow"
TP1 = (SNOWPLOW_VENDOR, "tp1")
PATH_EXPECTATION = "path does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request"
COLLECTOR_PAYLOAD_CRITERION = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-*"

_API_PATH = re.compile(r"/?([^/]+)/([^/]+)/?")

# java.net.URI's query/fragment alphabet: RFC 2396 reserved + unreserved, '%' (checked as an escape
# below), and every non-ASCII character above U+0080 that is neither an ISO control nor a Unicode
# space separator (Zs/Zl/Zp: U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000).
_URI_ILLEGAL_CHAR = re.compile(
    "[^A-Za-z0-9;/?:@&=+$,\\[\\]\\-_.!~*'()%"
    "\u00a1-\u167f\u1681-\u1fff\u200b-\u2027\u202a-\u202e\u2030-\u205e\u2060-\u2fff\u3001-\U0010ffff]"
)
_URI_BAD_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")
_URI_PREFIX = "http://localhost/?"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")
_PAIR_SEPARATORS = re.compile("[&;]")

# IpAddressExtractor's pattern, applied to the lower-cased header line. Java's `.` stops at every
# line terminator and `\d` is ASCII-only, hence the explicit classes.
_ANY = "[^\n\r\u0085\u2028\u2029]"
_IP = rf'"?\[?(?:(?:([0-9]{{1,3}}\.[0-9]{{1,3}}\.[0-9]{{1,3}}\.[0-9]{{1,3}}){_ANY}*)|((?:[0-9a-f]|\.|:+)+){_ANY}*)\]?"?'
_X_FORWARDED_FOR = re.compile(rf"x-forwarded-for: {_IP}{_ANY}*")
_FORWARDED_FOR = re.compile(rf"forwarded: for={_IP}{_ANY}*")

_UUID_CANONICAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_PART = re.compile(r"\+?[0-9a-fA-F]+")
_UUID_MASKS = (0xFFFFFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFFFFFF)
_JAVA_LONG_MAX = 2**63 - 1

_JAVA_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-+:_.]*")
_JAVA_CHARSET_DISPLAY = {
    "utf-8": "UTF-8", "ascii": "US-ASCII", "iso8859-1": "ISO-8859-1", "utf-16": "UTF-16",
    "utf-16-be": "UTF-16BE", "utf-16-le": "UTF-16LE", "utf-32": "UTF-32", "utf-32-be": "UTF-32BE",
    "utf-32-le": "UTF-32LE", "cp1252": "windows-1252",
}
# Python text codecs with no Java charset counterpart that also cannot decode arbitrary bytes.
_UNUSABLE_CODECS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"})


@dataclass(slots=True)
class CollectorRequest:
    """One raw record as the adapters see it (Snowplow's loaders.CollectorPayload)."""

    vendor: str
    version: str
    querystring: list[tuple[str, str | None]]  # decoded pairs in order; None for a name without `=`
    raw_querystring: str | None
    content_type: str | None
    body: str | None
    collector: str
    encoding: str
    hostname: str | None
    timestamp: int  # collector time, epoch milliseconds
    ip_address: str | None  # the client IP (protocol.md 4.5), not always the record's ipAddress
    useragent: str | None
    referer_uri: str | None
    headers: list[str]
    network_user_id: str | None  # canonical lower-case UUID

    def parameters(self) -> dict[str, str | None]:
        """The querystring as a map: the last occurrence of a name wins (Snowplow's `toMap`)."""
        return dict(self.querystring)

    def raw_event(self, parameters: dict[str, str | None]) -> RawEvent:
        """A RawEvent with these parameters and this request's context."""
        return RawEvent(
            vendor=self.vendor,
            version=self.version,
            parameters=parameters,
            content_type=self.content_type,
            loader_name="thrift",
            encoding=self.encoding,
            hostname=self.hostname,
            timestamp=self.timestamp,
            ip_address=self.ip_address,
            useragent=self.useragent,
            referer_uri=self.referer_uri,
            headers=self.headers,
            user_id=self.network_user_id,
        )


def load_request(record: bytes) -> CollectorRequest:
    """Decode one raw record. Raise PayloadFormatViolation (→ collector_payload_format_violation)
    carrying Snowplow's message object when the record is not a usable CollectorPayload."""
    payload = _decode(record)
    encoding = _text(payload.encoding)
    charset = _charset(encoding)
    if charset is None:
        # Java's Charset.forName fails with the bare name as its message.
        raise PayloadFormatViolation({"error": f"error deserializing raw event: {encoding}"})
    raw_querystring = _optional_text(payload.querystring)
    querystring = parse_querystring(raw_querystring, charset[0], charset[1])
    path = _optional_text(payload.path)
    if path is None:
        raise PayloadFormatViolation(
            {"payloadField": "path", "value": None, "expectation": "request does not contain a path"})
    api = parse_api(path)
    if api is None:
        raise PayloadFormatViolation({"payloadField": "path", "value": path, "expectation": PATH_EXPECTATION})
    raw_nuid = _optional_text(payload.network_user_id)
    network_user_id = None
    if raw_nuid is not None:
        network_user_id = java_uuid(raw_nuid)
        if network_user_id is None:
            raise PayloadFormatViolation(
                {"payloadField": "networkUserId", "value": raw_nuid, "expectation": "not valid UUID"})
    headers = [_text(line) for line in payload.headers] if payload.headers else []
    return CollectorRequest(
        vendor=api[0],
        version=api[1],
        querystring=querystring,
        raw_querystring=raw_querystring,
        content_type=_optional_text(payload.content_type),
        body=_optional_text(payload.body),
        collector=_text(payload.collector),
        encoding=encoding,
        hostname=_optional_text(payload.hostname),
        timestamp=payload.timestamp,
        ip_address=client_ip(headers, _optional_text(payload.ip_address)),
        useragent=_optional_text(payload.user_agent),
        referer_uri=_optional_text(payload.referer_uri),
        headers=headers,
        network_user_id=network_user_id,
    )


def _decode(record: bytes) -> CollectorPayload:
    try:
        return CollectorPayload.from_thrift(record)
    except PayloadDecodeError as exc:
        message = str(exc)
        if message.startswith("unexpected CollectorPayload schema "):
            schema = _unrepr(message.removeprefix("unexpected CollectorPayload schema "))
            raise PayloadFormatViolation(
                {"error": f"verifying record as {COLLECTOR_PAYLOAD_CRITERION} failed: found {schema}"}) from exc
        raise PayloadFormatViolation({"error": f"error deserializing raw event: {message}"}) from exc
    except TypeError as exc:
        # from_thrift compares a schema field it could not decode as UTF-8 (bytes) with a str.
        raise PayloadFormatViolation(
            {"error": f"verifying record as {COLLECTOR_PAYLOAD_CRITERION} failed: found invalid UTF-8"}) from exc


def _unrepr(text: str) -> str:
    """The schema value back from the repr that CollectorPayload.from_thrift put in its message."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return _text(value) if isinstance(value, str | bytes) else text


def _text(value: Any) -> str:
    # thriftpy2 hands back bytes for a string field that is not valid UTF-8; Java's Thrift reader
    # decodes such bytes with replacement characters, so do the same.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


@lru_cache(maxsize=64)
def _charset(name: str) -> tuple[str, str] | None:
    """(Python codec, Java's canonical charset name) for a payload encoding, None if unknown."""
    if _JAVA_CHARSET_NAME.fullmatch(name) is None:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _UNUSABLE_CODECS:
        return None
    return info.name, _JAVA_CHARSET_DISPLAY.get(info.name, name)


# --- path ---------------------------------------------------------------------------------------

def parse_api(path: str) -> tuple[str, str] | None:
    """(vendor, version) of a request path, or None when it is neither `/vendor/version` nor a pixel path."""
    match = _API_PATH.fullmatch(path)
    if match is not None:
        return match.group(1), match.group(2)
    if path == "/i" or path.startswith(("/ice.png", "/i?")):
        return TP1
    return None


# --- querystring --------------------------------------------------------------------------------

def parse_querystring(
    raw: str | None, codec: str = "utf-8", charset_name: str = "UTF-8"
) -> list[tuple[str, str | None]]:
    """Snowplow's `URLEncodedUtils.parse(URI.create("http://localhost/?" + raw), charset)`.

    The querystring must be a legal java.net.URI query (and fragment): otherwise the whole record
    is a PayloadFormatViolation. Pairs split on `&` and `;`; a pair with an empty name is dropped.
    """
    if not raw:
        return []
    query = _uri_query(raw)
    if query is None:
        message = _uri_error(raw)
        raise PayloadFormatViolation({
            "payloadField": "querystring",
            "value": raw,
            "expectation": f"could not extract name-value pairs from querystring with encoding {charset_name}: "
                           + _strip_instance_etc(message),
        })
    return _pairs(query, codec)


def parse_form(body: str) -> dict[str, str | None] | str:
    """Snowplow's `parseUrlEncodedForm` (UTF-8): the pairs as a map, or the URI error message."""
    query = _uri_query(body)
    if query is None:
        return _uri_error(body)
    return dict(_pairs(query, "utf-8"))


def _uri_illegal(raw: str, start: int = 0) -> int:
    """Index of the first character java.net.URI refuses in a query (`#` included), or -1."""
    bad = _URI_ILLEGAL_CHAR.search(raw, start)
    at = bad.start() if bad is not None else -1
    if "%" in raw:
        escape = _URI_BAD_ESCAPE.search(raw, start, at if at >= 0 else len(raw))
        if escape is not None:
            return escape.start()
    return at


def _uri_query(raw: str) -> str | None:
    """The raw query java.net.URI would see (the text before a `#`), or None if URI.create fails."""
    at = _uri_illegal(raw)
    if at < 0:
        return raw
    if raw[at] != "#":
        return None
    return raw[:at] if _uri_illegal(raw, at + 1) < 0 else None


def _uri_error(raw: str) -> str:
    """java.net.URISyntaxException's message for `http://localhost/?<raw>` (which is not a legal URI)."""
    where = "query"
    at = _uri_illegal(raw)
    if raw[at] == "#":
        where, at = "fragment", _uri_illegal(raw, at + 1)
    reason = "Malformed escape pair" if raw[at] == "%" else f"Illegal character in {where}"
    index = len(_URI_PREFIX) + _utf16_length(raw[:at])
    return f"{reason} at index {index}: {_URI_PREFIX}{raw}"


def _utf16_length(text: str) -> int:
    """Java string indexes count UTF-16 code units: a character beyond U+FFFF counts twice."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for char in text if char > "\uffff")


def _strip_instance_etc(message: str) -> str:
    """Snowplow's JsonUtils.stripInstanceEtc."""
    message = re.sub("@[0-9a-z]+;", "@xxxxxx;", message).replace("\t", "    ")
    return re.sub("[\x00-\x1f\x7f]", "", message).strip(" ")


def _pairs(query: str, codec: str) -> list[tuple[str, str | None]]:
    names: list[str] = []
    values: list[str | None] = []
    for token in query.split("&") if ";" not in query else _PAIR_SEPARATORS.split(query):
        name, equals, value = token.partition("=")
        if name:
            names.append(name)
            values.append(value if equals else None)
    if not names:
        return []
    if "%" not in query and "+" not in query and (codec == "utf-8" and query.isascii()):
        return list(zip(names, values, strict=True))
    if codec == "utf-8" and query.isascii() and "%00" not in query:
        # Decode every name and value in one pass, NUL-separated: a legal query holds no raw NUL,
        # and without %00 none can come out of decoding either.
        pieces = [*names, *("" if value is None else value for value in values)]
        decoded = _form_decode("\x00".join(pieces), codec).split("\x00")
        count = len(names)
        return [(decoded[index], None if values[index] is None else decoded[count + index]) for index in range(count)]
    return [(_form_decode(name, codec), None if value is None else _form_decode(value, codec))
            for name, value in zip(names, values, strict=True)]


def _form_decode(text: str, codec: str) -> str:
    """URLEncodedUtils.urlDecode: `+` → space, %XX → byte, decoded in the charset with replacement.

    Only called on URI-legal text, so every `%` starts a valid escape. Like Java, a character
    outside ASCII contributes only the low byte of its UTF-16 code unit(s).
    """
    if codec == "utf-8" and text.isascii():
        if "%" not in text:
            return text.replace("+", " ") if "+" in text else text
        # CPython's C escape decoder reads `\xHH` several times faster than unquote_to_bytes; the
        # text is URI-legal, so it holds no backslash of its own and every `%` has two hex digits.
        escaped = text.replace("+", " ").replace("%", "\\x").encode("ascii")
        return codecs.escape_decode(escaped)[0].decode("utf-8", "replace")
    data = bytearray()
    for index, part in enumerate(_ESCAPE.split(text)):
        if index % 2:
            data.append(int(part[1:], 16))
        elif part:
            data += part.replace("+", " ").encode("utf-16-le", "surrogatepass")[::2]
    return bytes(data).decode(codec, "replace")


# --- client IP, network user id -----------------------------------------------------------------

def client_ip(headers: list[str], fallback: str | None) -> str | None:
    """The first `X-Forwarded-For` IP, else the first `Forwarded: for=` IP, else the record's ipAddress."""
    forwarded: str | None = None
    for line in headers:
        head = line[:16].lower()
        if head == "x-forwarded-for:":
            match = _X_FORWARDED_FOR.fullmatch(line.lower())
            if match is not None:
                return match.group(1) or match.group(2)
        elif forwarded is None and head[:10] == "forwarded:":
            match = _FORWARDED_FOR.fullmatch(line.lower())
            if match is not None:
                forwarded = match.group(1) or match.group(2)
    return forwarded if forwarded is not None else fallback


def java_uuid(text: str) -> str | None:
    """Java's `UUID.fromString(text).toString()` (JDK 11+), or None where it would throw."""
    if len(text) == 36 and _UUID_CANONICAL.fullmatch(text) is not None:
        return text.lower()
    if len(text) > 36:
        return None
    parts = text.split("-")
    if len(parts) != 5:
        return None
    values = []
    for part, mask in zip(parts, _UUID_MASKS, strict=True):
        if _UUID_PART.fullmatch(part) is None:
            return None
        value = int(part, 16)
        if value > _JAVA_LONG_MAX:
            return None
        values.append(value & mask)
    return "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}".format(*values)


# --- bad-row payloads ---------------------------------------------------------------------------

@overload
def collector_payload_json(source: bytes) -> str: ...
@overload
def collector_payload_json(source: CollectorRequest | CollectorPayload) -> dict[str, Any]: ...
def collector_payload_json(source: bytes | CollectorRequest | CollectorPayload) -> str | dict[str, Any]:
    """A bad row's `payload`: the CollectorPayload JSON (adapter failures, tracker protocol
    violations) for a loaded request or a decoded payload; standard base64 of the raw bytes for a
    record that could not be loaded (collector_payload_format_violation)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return base64.b64encode(source).decode("ascii")
    request = source if isinstance(source, CollectorRequest) else _lenient_request(source)
    return {
        "vendor": request.vendor,
        "version": request.version,
        "querystring": [{"name": name, "value": value} for name, value in request.querystring],
        "contentType": request.content_type,
        "body": request.body,
        "collector": request.collector,
        "encoding": request.encoding,
        "hostname": request.hostname,
        "timestamp": iso_millis(request.timestamp),
        "ipAddress": request.ip_address,
        "useragent": request.useragent,
        "refererUri": request.referer_uri,
        "headers": request.headers,
        "networkUserId": request.network_user_id,
    }


def _lenient_request(payload: CollectorPayload) -> CollectorRequest:
    """A CollectorRequest made of whatever a decoded payload holds, never failing."""
    path = _optional_text(payload.path) or ""
    vendor, version = parse_api(path) or (path, "")
    raw_querystring = _optional_text(payload.querystring)
    charset = _charset(_text(payload.encoding)) or ("utf-8", "UTF-8")
    query = _uri_query(raw_querystring) if raw_querystring else None
    headers = [_text(line) for line in payload.headers] if payload.headers else []
    nuid = _optional_text(payload.network_user_id)
    return CollectorRequest(
        vendor=vendor,
        version=version,
        querystring=_pairs(query, charset[0]) if query else [],
        raw_querystring=raw_querystring,
        content_type=_optional_text(payload.content_type),
        body=_optional_text(payload.body),
        collector=_text(payload.collector),
        encoding=_text(payload.encoding),
        hostname=_optional_text(payload.hostname),
        timestamp=payload.timestamp,
        ip_address=client_ip(headers, _optional_text(payload.ip_address)),
        useragent=_optional_text(payload.user_agent),
        referer_uri=_optional_text(payload.referer_uri),
        headers=headers,
        network_user_id=java_uuid(nuid) if nuid is not None else None,
    )


def iso_millis(millis: int) -> str:
    """Joda's `DateTime.toString` in UTC (`2014-01-16T00:49:58.278Z`) for any epoch-millisecond value."""
    days, rest = divmod(millis, 86_400_000)
    # Howard Hinnant's civil_from_days: exact for every integer, where datetime stops at year 9999.
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    sign = "-" if year < 0 else ""
    return f"{sign}{abs(year):04d}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"
