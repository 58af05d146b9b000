"""ua_parser_config: the ua_parser_context entity from the useragent field, with uap-core regexes (ua-parser)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar, Self

from ua_parser import OS, BestAvailableResolver, Device, Domain, Resolver, UserAgent
from ua_parser.loaders import MatchersData, load_builtins, load_data, load_lazy_builtins

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = [
    "UA_PARSER_CONTEXT", "Parsed", "UaParserConfig", "default_resolver", "load_resolver", "parse_default", "parse_with",
]

UA_PARSER_CONTEXT = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"
CACHE_SIZE = 5_000
_NO_USER_AGENT = UserAgent()
_NO_OS = OS()
_NO_DEVICE = Device()

#: A parse result with uap's "Other" defaults filled in.
Parsed = tuple[UserAgent, OS, Device]


@cache
def default_resolver() -> Resolver:
    """The resolver over ua-parser's built-in uap-core regexes, built once per process (about 0.1 s)."""
    from ua_parser import Re2Resolver, RegexResolver

    # The compiled backends (Rust regex, re2) take the patterns as text, so lazy matchers are enough.
    compiled = RegexResolver is not None or Re2Resolver is not None
    return BestAvailableResolver(load_lazy_builtins() if compiled else load_builtins())


def load_resolver(path: Path) -> Resolver:
    """A resolver over a custom uap-core regexes file (`regexes.yaml`, or the same structure as JSON)."""
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(path.read_bytes())
        else:
            try:
                yaml: Any = importlib.import_module("yaml")  # PyYAML ships no type hints
            except ImportError:  # pragma: no cover - PyYAML is installed with Plowline
                raise EnrichmentConfigError(
                    "parameters.database", f"{path.name} is YAML, and PyYAML is not installed",
                    "pip install PyYAML, or convert the file to JSON") from None
            document = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        data: MatchersData = (
            document["user_agent_parsers"], document["os_parsers"], document["device_parsers"])
        return BestAvailableResolver(load_data(data))
    except EnrichmentConfigError:
        raise
    except Exception as exc:  # any malformed file: YAML/JSON errors, missing keys, bad regexes
        raise EnrichmentConfigError(
            "parameters.database", f"{path} is not a uap-core regexes file ({type(exc).__name__}: {exc})",
            "point database/uri at a regexes.yaml with user_agent_parsers, os_parsers and device_parsers") from exc


def parse_with(resolver: Resolver, useragent: str) -> Parsed:
    """Parse one user agent; a part no regex matched gets uap's defaults (family "Other")."""
    result = resolver(useragent, Domain.ALL)
    return (result.user_agent or _NO_USER_AGENT, result.os or _NO_OS, result.device or _NO_DEVICE)


@lru_cache(maxsize=CACHE_SIZE)
def parse_default(useragent: str) -> Parsed:
    """Parse with the built-in regexes. One LRU shared by ua_parser_config and user_agent_utils_config,
    so that with both enabled each user agent is matched once."""
    return parse_with(default_resolver(), useragent)


def _version(family: str, *parts: str | None) -> str:
    # Snowplow: family, then " " + major, then "." + each further part, skipping missing ones.
    text = family
    for index, part in enumerate(parts):
        if part is not None:
            text += (" " if index == 0 else ".") + part
    return text


def _context_data(parsed: Parsed) -> tuple[tuple[str, str | None], ...]:
    agent, os, device = parsed
    return (
        ("useragentFamily", agent.family),
        ("useragentMajor", agent.major),
        ("useragentMinor", agent.minor),
        ("useragentPatch", agent.patch),
        ("useragentVersion", _version(agent.family, agent.major, agent.minor, agent.patch)),
        ("osFamily", os.family),
        ("osMajor", os.major),
        ("osMinor", os.minor),
        ("osPatch", os.patch),
        ("osPatchMinor", os.patch_minor),
        ("osVersion", _version(os.family, os.major, os.minor, os.patch, os.patch_minor)),
        ("deviceFamily", device.family),
    )


class UaParserConfig:
    """ua_parser_config 1-0-*: optional `database` + `uri` of custom uap-core regexes; else the built-in ones."""

    config_name: ClassVar[str] = "ua_parser_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/ua_parser_config/jsonschema/1-0-*")

    def __init__(self, resolver: Resolver | None = None) -> None:
        if resolver is None:
            default_resolver()  # built now (about 0.1 s), not by the first event
        self.parse: Callable[[str], Parsed] = parse_default if resolver is None else partial(parse_with, resolver)
        # LRU of 5 000 user agents, as Snowplow's enrichment; the value is ready to copy into an entity.
        self.context_data: Callable[[str], tuple[tuple[str, str | None], ...]] = lru_cache(maxsize=CACHE_SIZE)(
            self._context_data)

    def _context_data(self, useragent: str) -> tuple[tuple[str, str | None], ...]:
        return _context_data(self.parse(useragent))

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        database, uri = parameters.get("database"), parameters.get("uri")
        if database is None and uri is None:
            return cls()
        for key, value in (("database", database), ("uri", uri)):
            if not isinstance(value, str) or not value:
                raise EnrichmentConfigError(
                    f"parameters.{key}", "is missing or empty: custom regexes need both database and uri",
                    "set both database and uri, or neither to use the built-in regexes")
        assert isinstance(database, str) and isinstance(uri, str)
        try:
            path = assets.path(uri, database)
        except EnrichmentConfigError as exc:
            raise EnrichmentConfigError(f"parameters.{exc.key}", exc.problem, exc.fix) from exc
        return cls(load_resolver(path))

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        useragent = event.useragent
        if useragent is None:
            return ()
        # A fresh dict per event: later steps (JavaScript, PII) may change entities in place.
        return ({"schema": UA_PARSER_CONTEXT, "data": dict(self.context_data(useragent))},)
