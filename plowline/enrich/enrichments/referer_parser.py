"""referer_parser: refr_medium, refr_source and refr_term from the referrer URL and a referers database."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.transform import tsv_safe
from plowline.enrich.urls import query_pairs
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["DB_MEDIUMS", "Referer", "RefererParser", "Referers", "load_referers_file"]

#: The mediums a referers database may list; "internal" comes from the config, not the database.
DB_MEDIUMS = ("unknown", "search", "social", "email", "paid", "chatbot")
_SCHEMES = frozenset({"http", "https", "android-app"})


class Referer(NamedTuple):
    medium: str
    source: str
    parameters: frozenset[str]


class Referers:
    """A referers database: `host[/path]` → Referer, looked up as Snowplow's referer-parser does."""

    def __init__(self, entries: Mapping[str, Referer]) -> None:
        self.entries = dict(entries)
        # The host part of every key, to skip hosts no entry can match without building keys.
        self._hosts = frozenset(key.partition("/")[0] for key in self.entries)

    @classmethod
    def from_document(cls, document: Any, where: str) -> Referers:
        """Build from Snowplow's format: {medium: {source: {"domains": [...], "parameters": [...]}}}."""
        entries: dict[str, Referer] = {}
        add_referers(entries, document, where)
        return cls(entries)

    def overlaid(self, document: Any, where: str) -> Referers:
        """A copy where the entries of `document` (same format) replace those for the same domains."""
        entries = dict(self.entries)
        add_referers(entries, document, where)
        return Referers(entries)

    def lookup(self, host: str, path: str) -> Referer | None:
        """First hit over paths [full, "/" + first segment, ""] by hosts [host, parent domains...]."""
        hosts: list[str] = []
        candidate = host
        while True:
            if candidate in self._hosts:
                hosts.append(candidate)
            dot = candidate.find(".")
            if dot < 0:
                break
            candidate = candidate[dot + 1:]
        if not hosts:
            return None
        entries = self.entries
        first_segment = "/" + path[1:].partition("/")[0] if path.startswith("/") else "/" + path.partition("/")[0]
        for tail in (path, first_segment, ""):
            for name in hosts:
                found = entries.get(name + tail)
                if found is not None:
                    return found
        return None


def add_referers(entries: dict[str, Referer], document: Any, where: str) -> None:
    """Add the entries of one Snowplow-format referers document; a later domain replaces an earlier one."""
    if not isinstance(document, Mapping):
        raise EnrichmentConfigError(where, "must be an object of mediums", f"use mediums {', '.join(DB_MEDIUMS)}")
    for medium, sources in document.items():
        if medium not in DB_MEDIUMS:
            raise EnrichmentConfigError(f"{where}.{medium}", "is not a referer medium",
                                        f"use one of {', '.join(DB_MEDIUMS)}")
        if not isinstance(sources, Mapping):
            raise EnrichmentConfigError(f"{where}.{medium}", "must be an object of sources",
                                        'write {"<source name>": {"domains": [...]}}')
        for source, spec in sources.items():
            key = f"{where}.{medium}.{source}"
            domains = spec.get("domains") if isinstance(spec, Mapping) else None
            parameters = spec.get("parameters", []) if isinstance(spec, Mapping) else None
            if not _strings(domains) or not domains:
                raise EnrichmentConfigError(f"{key}.domains", "must be a non-empty list of domains",
                                            'write "domains": ["example.com"]')
            if not _strings(parameters):
                raise EnrichmentConfigError(f"{key}.parameters", "must be a list of query parameter names",
                                            'write "parameters": ["q"]')
            assert isinstance(domains, list) and isinstance(parameters, list)
            referer = Referer(medium, str(source), frozenset(parameters))
            for domain in domains:
                host, slash, path = domain.strip().partition("/")
                entries[host.lower() + slash + path] = referer  # hosts compare lowercased, paths as sent


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def load_referers_file(path: Path) -> Any:
    """Read a referers database: JSON, or YAML for `.yml`/`.yaml` (Snowplow accepts both)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise EnrichmentConfigError("parameters.database", f"{path} cannot be read ({exc})",
                                    "check the file's permissions") from exc
    try:
        if path.suffix.lower() in (".yml", ".yaml"):
            yaml: Any = importlib.import_module("yaml")  # PyYAML ships no type hints
            return yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return json.loads(content)
    except Exception as exc:  # JSON or YAML syntax errors, whatever the parser's exception type
        raise EnrichmentConfigError("parameters.database", f"{path} is not a referers database ({exc})",
                                    "point database/uri at a referers JSON file") from exc


CACHE_SIZE = 4096


class RefererParser:
    """referer_parser 2-0-*: `internalDomains`, `database` + `uri` (referers JSON), optional `referrers` overrides.

    Applies to referrers with scheme http, https or android-app and a host. Same host as the page,
    or one of internalDomains: internal. Else the database decides; no entry: unknown.
    """

    config_name: ClassVar[str] = "referer_parser"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/referer_parser/jsonschema/2-0-*")

    def __init__(self, referers: Referers, internal_domains: Iterable[str] = ()) -> None:
        self.referers = referers
        self.internal_domains = frozenset(domain.strip().lower() for domain in internal_domains)
        # The events of a page share its referrer: classify each (referrer, page host) once.
        self.classify: Callable[[str, str, str | None, str | None], tuple[str, str | None, str | None]] = (
            lru_cache(maxsize=CACHE_SIZE)(self._classify)
        )

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        internal = parameters.get("internalDomains")
        if not _strings(internal):
            raise EnrichmentConfigError("parameters.internalDomains", "must be a list of host names",
                                        'set "internalDomains": [] or list your own domains')
        for key in ("database", "uri"):
            if not isinstance(parameters.get(key), str) or not parameters[key]:
                raise EnrichmentConfigError(
                    f"parameters.{key}", "is missing",
                    'set "database": "referers.json", "uri": "plowline://builtin" for the shipped database')
        try:
            path = assets.path(parameters["uri"], parameters["database"])
        except EnrichmentConfigError as exc:
            raise EnrichmentConfigError(f"parameters.{exc.key}", exc.problem, exc.fix) from exc
        referers = Referers.from_document(load_referers_file(path), f"database {path.name}")
        custom = parameters.get("referrers")
        if custom is not None:
            referers = referers.overlaid(custom, "parameters.referrers")
        assert isinstance(internal, list)
        return cls(referers, internal)

    def _classify(self, host: str, path: str, query: str | None, page_host: str | None) -> tuple[str, str | None,
                                                                                                str | None]:
        """(medium, source, term) for a referrer with a valid scheme and host."""
        if host == page_host or host in self.internal_domains:
            return ("internal", None, None)
        referer = self.referers.lookup(host, path)
        if referer is None or referer.medium == "unknown":
            return ("unknown", None, None)
        if referer.medium != "search":
            return (referer.medium, referer.source, None)
        term = None
        if query and referer.parameters:
            for name, value in query_pairs(query):
                if name in referer.parameters:
                    term = value
                    break
        return ("search", referer.source, term)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        host = event.refr_urlhost
        if not host or event.refr_urlscheme not in _SCHEMES:
            return ()
        medium, source, term = self.classify(host, event.refr_urlpath or "", event.refr_urlquery, event.page_urlhost)
        event.refr_medium = medium
        event.refr_source = tsv_safe(source) if source else None
        event.refr_term = tsv_safe(term) if term else None
        return ()
