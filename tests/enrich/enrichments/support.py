"""Test helpers for enrichments: an offline Iglu resolver, events built from URLs, MaxMind databases."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from plowline.enrich.raw_event import RawEvent
from plowline.enrich.steps import split_url
from plowline.event import EnrichedEvent
from plowline.iglu.repositories import EmbeddedRepository, LocalRepository
from plowline.iglu.resolver import Resolver

IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central"
TEST_DATA = Path(__file__).resolve().parents[2] / "data" / "enrichments"


@cache
def offline_resolver() -> Resolver:
    """Plowline's embedded schemas, then the shared iglu-central copy; no network."""
    return Resolver(preferred=[EmbeddedRepository(), LocalRepository(IGLU_CENTRAL)])


def validate_entity(entity: Mapping[str, Any]) -> None:
    """Raise unless `entity` is valid against its Iglu schema (as the pipeline's phase 3 checks)."""
    offline_resolver().validate_sdj(dict(entity))


def config(schema: str, parameters: Mapping[str, Any] | None, **envelope: Any) -> dict[str, Any]:
    """A Snowplow enrichment config SDJ for `schema` (`iglu:vendor/name/jsonschema/x-y-z`)."""
    vendor, name = schema.removeprefix("iglu:").split("/")[:2]
    data: dict[str, Any] = {"vendor": vendor, "name": name, "enabled": True, **envelope}
    if parameters is not None:
        data["parameters"] = dict(parameters)
    return {"schema": schema, "data": data}


def valid_parameters(schema: str, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check `parameters` against the config schema, then hand them back (tests use Snowplow-valid configs)."""
    offline_resolver().validate_sdj(config(schema, parameters))
    return parameters


class NoAssets:
    """An AssetStore for enrichments that must not read files."""

    def path(self, uri: str, database: str) -> Path:
        raise AssertionError(f"unexpected asset {uri}/{database}")


class FolderAssets:
    """An AssetStore that finds every database in one folder, whatever the uri."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, uri: str, database: str) -> Path:
        return self.folder / database


def raw_event(parameters: Mapping[str, str | None] | None = None, **fields: Any) -> RawEvent:
    return RawEvent("com.snowplowanalytics.snowplow", "tp2", dict(parameters or {}), **fields)


def web_event(page: str | None = None, referrer: str | None = None, **fields: Any) -> EnrichedEvent:
    """An event whose page_url*/refr_url* parts are set as the pipeline's URL steps set them."""
    event = EnrichedEvent(**fields)
    if page is not None:
        parts = split_url(page)
        event.page_url = parts.url
        event.page_urlscheme, event.page_urlhost, event.page_urlport = parts.scheme, parts.host, parts.port
        event.page_urlpath, event.page_urlquery, event.page_urlfragment = parts.path, parts.query, parts.fragment
    if referrer is not None:
        parts = split_url(referrer)
        event.page_referrer = parts.url
        event.refr_urlscheme, event.refr_urlhost, event.refr_urlport = parts.scheme, parts.host, parts.port
        event.refr_urlpath, event.refr_urlquery, event.refr_urlfragment = parts.path, parts.query, parts.fragment
    return event


def write_mmdb(path: Path, database_type: str, records: Mapping[str, Mapping[str, Any]]) -> Path:
    """A MaxMind DB (IPv6 tree holding IPv4 too, as MaxMind's own) with one record per network (CIDR)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        languages=["en"], description=f"Plowline test {database_type}")
    for network, record in records.items():
        writer.insert_network(IPSet([network]), dict(record))
    writer.to_db_file(str(path))
    return path
