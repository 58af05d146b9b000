"""anon_ip: replace the last octets (IPv4) or segments (IPv6) of user_ipaddress by `x`."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["AnonIp", "anonymize_ip"]

_IPV4_PARTS = 4
_IPV6_PARTS = 8


def _int_parameter(parameters: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = parameters.get(name)
    # The schema says "number": accept 2.0 but not 2.5 or true.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise EnrichmentConfigError(
            f"parameters.{name}", f"must be a whole number from {low} to {high}, got {value!r}",
            f"set {name} to how many parts to replace by x ({low}..{high})")
    return value


def _java_split(text: str, separator: str) -> list[str]:
    # Java's String.split drops trailing empty strings (but "" splits to [""]); Snowplow relies on it.
    parts = text.split(separator)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _anonymize_v4(ip: str, octets: int) -> str:
    # Everything up to the last ':' is an IPv6 prefix (::ffff:) kept as sent.
    cut = ip.rfind(":") + 1
    parts = _java_split(ip[cut:], ".")
    keep = _IPV4_PARTS - octets
    if len(parts) > keep:
        parts[keep:] = ["x"] * (len(parts) - keep)
    return ip[:cut] + ".".join(parts)


def _expand_v6(ip: str) -> list[str]:
    """Segments of an IPv6 string: canonical (Java's getHostAddress form) if valid, else split by hand."""
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        head, double, tail = ip.partition("::")
        if not double:
            return _java_split(ip, ":")
        left = head.split(":") if head else []
        right = _java_split(tail, ":") if tail else []
        return left + ["0"] * max(_IPV6_PARTS - len(left) - len(right), 0) + right
    value = int(address)
    return [format((value >> shift) & 0xFFFF, "x") for shift in range(112, -16, -16)]


def _anonymize_v6(ip: str, segments: int) -> str:
    parts = _expand_v6(ip)[: _IPV6_PARTS - segments]
    return ":".join(parts + ["x"] * (_IPV6_PARTS - len(parts)))


def anonymize_ip(ip: str, octets: int, segments: int) -> str:
    """Snowplow's anonymisation of one address string (valid or not; see spec/enrich.md 3.3)."""
    if ":" not in ip:
        return _anonymize_v4(ip, octets)
    try:
        mapped = ipaddress.IPv6Address(ip).ipv4_mapped
    except ValueError:
        mapped = None
    if mapped is not None:  # Java parses ::ffff:a.b.c.d as an IPv4 address
        return _anonymize_v4(ip, octets)
    return _anonymize_v6(ip, segments)


class AnonIp:
    """anon_ip 1-0-*: `anonOctets` (1-4) for IPv4, `anonSegments` (1-8, default anonOctets) for IPv6."""

    config_name: ClassVar[str] = "anon_ip"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-*")

    def __init__(self, octets: int, segments: int) -> None:
        self.octets = octets
        self.segments = segments

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        octets = _int_parameter(parameters, "anonOctets", 1, _IPV4_PARTS)
        segments = octets
        if parameters.get("anonSegments") is not None:
            segments = _int_parameter(parameters, "anonSegments", 1, _IPV6_PARTS)
        return cls(octets, segments)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        ip = event.user_ipaddress
        if ip is not None:
            event.user_ipaddress = anonymize_ip(ip, self.octets, self.segments)
        return ()
