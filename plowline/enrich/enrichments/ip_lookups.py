"""ip_lookups: geo_*, ip_isp, ip_organization, ip_domain, ip_netspeed and the asn entity from MaxMind databases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import maxminddb

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["ASN_SCHEMA", "IpLookups", "strip_port"]

ASN_SCHEMA = "iglu:com.snowplowanalytics.snowplow/asn/jsonschema/1-0-1"
CACHE_SIZE = 20_000
#: The config sections, each naming one MaxMind database (spec/enrich.md 3.1).
DATABASES = ("geo", "isp", "domain", "connectionType", "asn")
_LOOKUP_ERRORS = (ValueError, TypeError, maxminddb.InvalidDatabaseError)


class Geo(NamedTuple):
    country: str | None
    region: str | None
    city: str | None
    zipcode: str | None
    latitude: float
    longitude: float
    region_name: str | None
    timezone: str | None


class Found(NamedTuple):
    """What the configured databases know of one address; None where a database had no record."""

    geo: Geo | None
    isp: str | None
    organization: str | None
    domain: str | None
    netspeed: str | None
    asn: tuple[tuple[str, Any], ...] | None  # the asn entity's data, frozen for the cache


_NOTHING = Found(None, None, None, None, None, None)


def strip_port(ip: str) -> str:
    """`1.2.3.4:8080` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1`; a bare IPv6 address is unchanged."""
    if ip.startswith("["):
        end = ip.find("]")
        return ip[1:end] if end > 0 else ip
    if ip.count(":") == 1:
        return ip.partition(":")[0]
    return ip


def _english_name(record: Mapping[str, Any] | None) -> str | None:
    names = record.get("names") if record else None
    return names.get("en") if isinstance(names, Mapping) else None


def _geo(record: Mapping[str, Any]) -> Geo:
    country = record.get("country") or {}
    subdivisions = record.get("subdivisions") or ()
    region = subdivisions[-1] if subdivisions else {}  # the most specific subdivision
    location = record.get("location") or {}
    latitude, longitude = location.get("latitude"), location.get("longitude")
    return Geo(
        country=country.get("iso_code"),
        region=region.get("iso_code"),
        city=_english_name(record.get("city")),
        zipcode=(record.get("postal") or {}).get("code"),
        latitude=float(latitude) if latitude is not None else 0.0,
        longitude=float(longitude) if longitude is not None else 0.0,
        region_name=_english_name(region),
        timezone=location.get("time_zone"),
    )


def _open(section: str, parameters: Mapping[str, Any], assets: AssetStore) -> maxminddb.Reader:
    spec = parameters[section]
    if not isinstance(spec, Mapping):
        raise EnrichmentConfigError(f"parameters.{section}", "must be an object with database and uri",
                                    f'set {section} to {{"database": "<file>.mmdb", "uri": "<folder>"}}')
    for key in ("database", "uri"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise EnrichmentConfigError(f"parameters.{section}.{key}", "is missing",
                                        f"set {section}.{key} (the file is uri + '/' + database)")
    try:
        path: Path = assets.path(spec["uri"], spec["database"])
    except EnrichmentConfigError as exc:
        raise EnrichmentConfigError(f"parameters.{section}.{exc.key}", exc.problem, exc.fix) from exc
    try:
        # MODE_AUTO uses the C extension (libmaxminddb over mmap) when it is installed.
        return maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise EnrichmentConfigError(f"parameters.{section}", f"{path} is not a MaxMind database ({exc})",
                                    "point database/uri at a .mmdb file") from exc


class IpLookups:
    """ip_lookups 2-0-*: any of `geo`, `isp`, `domain`, `connectionType`, `asn` {database, uri}.

    Lookups never fail the event: an address that is invalid or not in a database sets nothing.
    Results are cached per address (LRU, 20 000 entries, as Snowplow).
    """

    config_name: ClassVar[str] = "ip_lookups"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/ip_lookups/jsonschema/2-0-*")

    def __init__(self, readers: Mapping[str, maxminddb.Reader]) -> None:
        self.readers = dict(readers)
        self._geo_db = readers.get("geo")
        self._isp_db = readers.get("isp")
        self._domain_db = readers.get("domain")
        self._connection_db = readers.get("connectionType")
        self._asn_db = readers.get("asn")
        self.lookup = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        unknown = sorted(set(parameters) - set(DATABASES))
        if unknown:
            raise EnrichmentConfigError(f"parameters.{unknown[0]}", "is not an ip_lookups database",
                                        f"use only {', '.join(DATABASES)}")
        readers = {section: _open(section, parameters, assets) for section in DATABASES if section in parameters}
        return cls(readers)

    @staticmethod
    def _get(reader: maxminddb.Reader | None, ip: str) -> Mapping[str, Any] | None:
        if reader is None:
            return None
        try:
            record = reader.get(ip)
        except _LOOKUP_ERRORS:
            return None
        return record if isinstance(record, Mapping) else None

    def _lookup(self, ip: str) -> Found:
        ip = strip_port(ip.strip())
        geo_record = self._get(self._geo_db, ip)
        isp_record = self._get(self._isp_db, ip)
        domain_record = self._get(self._domain_db, ip)
        connection_record = self._get(self._connection_db, ip)
        asn_record = self._get(self._asn_db, ip)
        asn: tuple[tuple[str, Any], ...] | None = None
        if asn_record is not None and isinstance(asn_record.get("autonomous_system_number"), int):
            data: list[tuple[str, Any]] = [("number", asn_record["autonomous_system_number"])]
            organization = asn_record.get("autonomous_system_organization")
            if organization is not None:
                data.append(("organization", organization))
            asn = tuple(data)
        found = Found(
            geo=_geo(geo_record) if geo_record is not None else None,
            isp=isp_record.get("isp") if isp_record is not None else None,
            organization=isp_record.get("organization") if isp_record is not None else None,
            domain=domain_record.get("domain") if domain_record is not None else None,
            netspeed=connection_record.get("connection_type") if connection_record is not None else None,
            asn=asn,
        )
        return _NOTHING if found == _NOTHING else found

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        ip = event.user_ipaddress
        if not ip:
            return ()
        found = self.lookup(ip)
        if found is _NOTHING:
            return ()
        geo = found.geo
        if geo is not None:
            event.geo_country, event.geo_region, event.geo_city, event.geo_zipcode = (
                geo.country, geo.region, geo.city, geo.zipcode)
            event.geo_latitude, event.geo_longitude = geo.latitude, geo.longitude
            event.geo_region_name, event.geo_timezone = geo.region_name, geo.timezone
        if found.isp is not None:
            event.ip_isp = found.isp
        if found.organization is not None:
            event.ip_organization = found.organization
        if found.domain is not None:
            event.ip_domain = found.domain
        if found.netspeed is not None:
            event.ip_netspeed = found.netspeed
        if found.asn is not None:
            return ({"schema": ASN_SCHEMA, "data": dict(found.asn)},)
        return ()

    def close(self) -> None:
        """Release the database files (mmap); the instance cannot look up afterwards."""
        for reader in self.readers.values():
            reader.close()
        self.lookup.cache_clear()
