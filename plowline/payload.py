"""CollectorPayload: the raw record, Thrift TBinaryProtocol encode/decode (byte-compatible with Snowplow)."""

from __future__ import annotations

import base64
import binascii
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
        try:
            struct = deserialize(_ThriftPayload(), data, _PROTOCOL)
        except (TException, TTransportException) as exc:
            raise PayloadDecodeError(f"not a Thrift CollectorPayload: {exc}") from exc
        except Exception as exc:
            # The Thrift reader reports hostile bytes in many ways (a negative length is a
            # SystemError); for untrusted input every one of them means "not a payload".
            raise PayloadDecodeError(f"not a Thrift CollectorPayload: {exc}") from exc
        missing = [name for name, attr in _REQUIRED.items() if getattr(struct, attr) is None]
        if missing:
            raise PayloadDecodeError(f"CollectorPayload lacks required field(s): {', '.join(missing)}")
        if not struct.schema.startswith(SCHEMA_PREFIX):
            raise PayloadDecodeError(f"unexpected CollectorPayload schema {struct.schema!r}")
        return cls(**{py: getattr(struct, thrift) for py, thrift in _FIELD_NAMES.items()})

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
_REQUIRED = {"schema": "schema", "ipAddress": "ipAddress", "timestamp": "timestamp",
             "encoding": "encoding", "collector": "collector"}


def _to_thrift_struct(payload: CollectorPayload) -> Any:
    return _ThriftPayload(**{thrift: getattr(payload, py) for py, thrift in _FIELD_NAMES.items()})
