"""CollectorPayload: the raw record, Thrift TBinaryProtocol encode/decode (byte-compatible with Snowplow)."""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

import thriftpy2
from thriftpy2.protocol import TCyBinaryProtocolFactory
from thriftpy2.thrift import TException
from thriftpy2.transport import TTransportException
from thriftpy2.utils import deserialize, serialize

from plowline.errors import PayloadDecodeError

SCHEMA_URI = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"
SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-"

_IDL = resources.files("plowline").joinpath("collector_payload.thrift")
with resources.as_file(_IDL) as _idl_path:
    _thrift: Any = thriftpy2.load(str(_idl_path), module_name="plowline_collector_payload_thrift")
_ThriftPayload: Any = _thrift.CollectorPayload
_PROTOCOL = TCyBinaryProtocolFactory()  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class CollectorPayload:
    """One HTTP request as the collector saw it. Field names follow the Thrift IDL."""

    ip_address: str
    timestamp: int
    encoding: str
    collector: str
    user_agent: str | None = None
    referer_uri: str | None = None
    path: str | None = None
    querystring: str | None = None
    body: str | None = None
    headers: list[str] | None = None
    content_type: str | None = None
    hostname: str | None = None
    network_user_id: str | None = None
    schema: str = field(default=SCHEMA_URI)

    def to_thrift(self) -> bytes:
        """Serialise with TBinaryProtocol, fields in ascending id order as Snowplow's collector does."""
        return bytes(serialize(_to_thrift_struct(self), _PROTOCOL))

    @classmethod
    def from_thrift(cls, data: bytes) -> CollectorPayload:
        """Decode TBinaryProtocol bytes; raise PayloadDecodeError for anything that is not a payload."""
        problem = _check_struct(memoryview(data))
        if problem is not None:
            raise PayloadDecodeError(f"not a Thrift CollectorPayload: {problem}")
        try:
            struct = deserialize(_ThriftPayload(), data, _PROTOCOL)
        except (TException, TTransportException) as exc:
            raise PayloadDecodeError(f"not a Thrift CollectorPayload: {exc}") from exc
        except Exception as exc:
            # The Thrift reader reports hostile bytes in many ways (a negative length is a
            # SystemError); for untrusted input every one of them means "not a payload".
            raise PayloadDecodeError(f"not a Thrift CollectorPayload: {exc}") from exc
        values = {py: _text(getattr(struct, thrift)) for py, thrift in _FIELD_NAMES.items()}
        missing = [name for name, py in _REQUIRED.items() if values[py] is None]
        if missing:
            raise PayloadDecodeError(f"CollectorPayload lacks required field(s): {', '.join(missing)}")
        if not values["schema"].startswith(SCHEMA_PREFIX):
            raise PayloadDecodeError(f"unexpected CollectorPayload schema {values['schema']!r}")
        return cls(**values)

    def to_base64(self) -> str:
        """Standard base64 without padding, one record per line, as Snowplow's stdout sink prints."""
        return base64.b64encode(self.to_thrift()).decode("ascii").rstrip("=")

    @classmethod
    def from_base64(cls, text: str) -> CollectorPayload:
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error as exc:
            raise PayloadDecodeError(f"not base64: {exc}") from exc
        return cls.from_thrift(data)

    def header(self, name: str) -> str | None:
        """The first recorded header of that name (case-insensitive), or None."""
        prefix = name.lower() + ":"
        for line in self.headers or ():
            if line[: len(prefix)].lower() == prefix:
                return line[len(prefix) :].lstrip()
        return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_FIELD_NAMES = {f.name: _camel(f.name) for f in fields(CollectorPayload)}
_FIELD_NAMES["network_user_id"] = "networkUserId"
_FIELD_NAMES["referer_uri"] = "refererUri"
_REQUIRED = {"schema": "schema", "ipAddress": "ip_address", "timestamp": "timestamp",
             "encoding": "encoding", "collector": "collector"}


def _text(value: Any) -> Any:
    """The Thrift reader returns bytes for a string that is not UTF-8; read it as Java would (U+FFFD)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_text(item) for item in value]
    return value


# TBinaryProtocol type ids → fixed value size in bytes (None: variable).
_FIXED_SIZES = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8}
_MAX_NESTING = 16
_read_i32 = struct.Struct(">i").unpack_from


def _check_struct(data: memoryview, start: int = 0, depth: int = 0) -> str | None:
    """Walk a struct checking every declared length against the bytes present, before the C reader
    trusts them: a few hostile bytes must not make it allocate gigabytes or loop for minutes."""
    end = _skip_struct(data, start, depth)
    if isinstance(end, str):
        return end
    return None


def _skip_value(data: memoryview, kind: int, pos: int, depth: int) -> int | str:
    size = _FIXED_SIZES.get(kind)
    if size is not None:
        return pos + size if pos + size <= len(data) else "truncated value"
    if kind == 11:  # string / binary
        return _skip_strings(data, pos, 1)
    if depth >= _MAX_NESTING:
        return "nested too deeply"
    if kind == 12:
        return _skip_struct(data, pos, depth + 1)
    if kind in (13, 14, 15):
        header = 6 if kind == 13 else 5
        if pos + header > len(data):
            return "truncated container header"
        kinds = [data[pos], data[pos + 1]] if kind == 13 else [data[pos]]
        count = int.from_bytes(data[pos + header - 4 : pos + header], "big", signed=True)
        pos += header
        if count < 0 or count > len(data) - pos:  # every element takes at least one byte
            return f"container size {count} exceeds the record"
        if kinds == [11]:  # list<string> (the headers): the usual container, in one tight loop
            return _skip_strings(data, pos, count)
        for _ in range(count):
            for element in kinds:
                result = _skip_value(data, element, pos, depth + 1)
                if isinstance(result, str):
                    return result
                pos = result
        return pos
    return f"unknown field type {kind}"


def _skip_strings(data: memoryview, pos: int, count: int) -> int | str:
    end = len(data)
    for _ in range(count):
        if pos + 4 > end:
            return "truncated string length"
        (length,) = _read_i32(data, pos)
        if length < 0 or pos + 4 + length > end:
            return f"string length {length} exceeds the record"
        pos += 4 + length
    return pos


def _skip_struct(data: memoryview, pos: int, depth: int) -> int | str:
    while True:
        if pos >= len(data):
            return "missing struct stop byte"
        kind = data[pos]
        if kind == 0:
            return pos + 1
        if pos + 3 > len(data):
            return "truncated field header"
        result = _skip_value(data, kind, pos + 3, depth)
        if isinstance(result, str):
            return result
        pos = result


def _to_thrift_struct(payload: CollectorPayload) -> Any:
    return _ThriftPayload(**{thrift: getattr(payload, py) for py, thrift in _FIELD_NAMES.items()})
