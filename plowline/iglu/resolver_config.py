"""Snowplow's resolver-config JSON (`iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-x`) → settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from plowline.errors import ConfigError
from plowline.iglu.errors import NotIglu, ValidationError
from plowline.iglu.repositories import (
    PACKAGE_PATHS,
    EmbeddedRepository,
    IgluServerRepository,
    Repository,
    StaticHttpRepository,
)
from plowline.iglu.validation import compile_schema, split_sdj
from plowline.observability import get_logger
from plowline.schema_key import SchemaCriterion, SchemaKey

__all__ = ["RESOLVER_CONFIG", "ResolverSettings", "load_resolver_config", "parse_resolver_config"]

RESOLVER_CONFIG = SchemaCriterion.parse("iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-*")
_LATEST = "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3"

_log = get_logger("iglu")


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """What a resolver config says: cache size, TTL in seconds (None = never expire), repositories in file order."""

    cache_size: int
    cache_ttl: float | None
    repositories: tuple[Repository, ...]


def load_resolver_config(config: Mapping[str, Any] | str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """Read the config: a parsed dict, JSON text (a str starting with "{") or a file path.

    Returns the JSON, a label for messages, and the directory relative embedded paths are taken from.
    """
    if isinstance(config, Mapping):
        return dict(config), "resolver config", None
    if isinstance(config, str) and config.lstrip().startswith("{"):
        return _decode(config.encode(), "resolver config"), "resolver config", None
    path = Path(config)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("resolver", f"cannot read the resolver config {path}: {exc.strerror or exc}",
                          "pass the path of a Snowplow resolver-config JSON file") from exc
    return _decode(raw, str(path)), str(path), path.parent


def _decode(raw: bytes, source: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError("resolver", f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError("resolver", f"{source} is not a JSON object",
                          f"write a self-describing JSON with schema {_LATEST}")
    return value


def _key_of(report: dict[str, Any]) -> tuple[str, str]:
    path, _, problem = report["message"].partition(": ")
    if report["keyword"] in {"oneOf", "anyOf"}:
        problem = "matches none of the forms the schema allows"
    return "data" + path[1:], problem


def _fail(reports: list[dict[str, Any]], source: str) -> NoReturn:
    keyed = [_key_of(report) for report in reports]
    key, problem = keyed[0]
    fix = f"see {_LATEST}"
    if key.endswith(".connection") or ".connection." in key:
        fix = 'a connection is {"http": {"uri": "https://…", "apikey": "…"}} or {"embedded": {"path": "/dir"}}'
    others = "; ".join(f"{k}: {p}" for k, p in keyed[1:])
    raise ConfigError(key, f"{problem} (in {source})" + (f"; also {others}" if others else ""), fix)


def _integer(value: Any, key: str, source: str) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ConfigError(key, f"{value} is not a whole number (in {source})", "use an integer")
    return int(value)


def parse_resolver_config(config: Mapping[str, Any] | str | Path) -> ResolverSettings:
    """Validate a resolver config against its embedded schema and build its repositories.

    Every schema violation is reported in one ConfigError whose key is the JSON path of the first one in the
    file (`data.repositories[1].priority`); `http` connections whose uri ends in `/api` become
    IgluServerRepository, other `http` ones StaticHttpRepository, `embedded` ones EmbeddedRepository.
    """
    document, source, base_dir = load_resolver_config(config)
    try:
        key, data = split_sdj(document)
    except NotIglu as exc:
        raise ConfigError("schema", f"{source} is not a self-describing JSON: {exc}",
                          f'wrap it as {{"schema": "{_LATEST}", "data": {{…}}}}') from exc
    if not RESOLVER_CONFIG.matches(key):
        raise ConfigError("schema", f"{key.uri} is not a resolver config (in {source})", f"use {_LATEST}")
    _validate(key, data, source)

    cache_size = _integer(data["cacheSize"], "data.cacheSize", source)
    if cache_size < 0:
        raise ConfigError("data.cacheSize", f"must not be negative (in {source})", "use 0 to disable the cache")
    ttl = data.get("cacheTtl")
    names: set[str] = set()
    repositories: list[Repository] = []
    for index, entry in enumerate(data["repositories"]):
        at = f"data.repositories[{index}]"
        name = entry["name"]
        if name in names:
            raise ConfigError(f"{at}.name", f"repository name {name!r} is used twice (in {source})",
                              "give each repository a unique name")
        names.add(name)
        repositories.append(_repository(entry, at, source, base_dir))
    return ResolverSettings(cache_size, None if ttl is None else float(ttl), tuple(repositories))


def _validate(key: SchemaKey, data: Any, source: str) -> None:
    schema = EmbeddedRepository().lookup(key)
    if schema is None:
        raise ConfigError("schema", f"unknown resolver-config version {key.version} (in {source})", f"use {_LATEST}")

    def no_refs(uri: str) -> Any:
        raise ValueError(f"unexpected $ref {uri}")

    try:
        compiled = compile_schema(key, schema, no_refs)
    except ValidationError as exc:  # only if the shipped schema is broken
        raise ConfigError("schema", f"the embedded schema {key.uri} is unusable: {exc}") from exc
    reports = compiled.data_reports(data)
    if reports:
        _fail(reports, source)


def _repository(entry: dict[str, Any], at: str, source: str, base_dir: Path | None) -> Repository:
    name = entry["name"]
    priority = _integer(entry["priority"], f"{at}.priority", source)
    prefixes = entry["vendorPrefixes"]
    connection = entry["connection"]
    if "embedded" in connection:
        path = connection["embedded"]["path"]
        embedded = EmbeddedRepository(path, name=name, priority=priority, vendor_prefixes=prefixes, base_dir=base_dir)
        if not embedded.exists:
            _log.warning("iglu_embedded_path_missing", repository=name, key=f"{at}.connection.embedded.path",
                         path=str(embedded.path), known=sorted(PACKAGE_PATHS),
                         hint="no such directory here: this repository will find nothing")
        return embedded
    http = connection["http"]
    uri, apikey = http["uri"], http.get("apikey")
    kind = IgluServerRepository if uri.rstrip("/").endswith("/api") else StaticHttpRepository
    try:
        return kind(uri, apikey, name=name, priority=priority, vendor_prefixes=prefixes)
    except ConfigError as exc:
        raise ConfigError(f"{at}.connection.http.uri", f"{exc.problem} (in {source})", exc.fix) from exc
