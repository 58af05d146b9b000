"""Snowplow enrichment configs (a directory of JSONs or an `enrichments` container) → validated, built enrichments.

Each config is a self-describing JSON `{"schema": "iglu:…/<name>_config/jsonschema/x-y-z", "data":
{"vendor", "name", "enabled", "parameters"}}`, exactly as Snowplow enrich reads them, so a Snowplow
user's config directory works unchanged (spec/enrich.md 2.11). For every config:
  1. it is validated against its Iglu schema (every data report is kept);
  2. `enabled: false` is skipped; a schema name no enrichment answers to is skipped with a warning;
  3. the schema version must match the enrichment's `supported_schema` criterion;
  4. the enrichment is built with `from_config(parameters, assets)`.
Problems do not stop the walk: all of them, from every file, are raised together in one
EnrichmentConfigErrors whose message lists file, key path and fix, one per line.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from plowline.enrich.assets import LocalAssetStore
from plowline.enrich.enrichments import ENRICHMENTS
from plowline.enrich.enrichments.base import AssetStore, Enrichment
from plowline.enrich.errors import EnrichmentConfigError
from plowline.iglu.errors import CriterionMismatch, IgluError, NotIglu, ResolutionError, ValidationError
from plowline.observability import get_logger
from plowline.registry import Registry
from plowline.schema_key import InvalidSchemaKey, SchemaCriterion, SchemaKey

__all__ = [
    "CONTAINER_CRITERION",
    "DEFAULT_ENRICHMENTS_DIR",
    "ConfigProblem",
    "EnrichmentConfigErrors",
    "SdjValidator",
    "build_enrichments",
    "default_enrichment_configs",
    "load_enrichments",
    "read_enrichment_configs",
]

CONTAINER_CRITERION = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-*")
#: The enrichment configs Plowline uses when none are given; plain Snowplow files a user can copy.
DEFAULT_ENRICHMENTS_DIR = Path(__file__).parent / "default_enrichments"
_ENVELOPE = ("vendor", "name", "enabled", "parameters")
_log = get_logger("enrich.enrichment_config")


class SdjValidator(Protocol):
    """The part of the Iglu Resolver this module needs."""

    def validate_sdj(self, instance: Any, criterion: SchemaCriterion | None = None) -> Any:
        """Validate a self-describing JSON; raise NotIglu, CriterionMismatch or IgluError."""
        ...


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in one config: where (file, or file[index] in a container), which key, the fix."""

    source: str
    key: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.source}: {self.key}: {self.problem}"
        return text + (f" (fix: {self.fix})" if self.fix else "")


class EnrichmentConfigErrors(EnrichmentConfigError):
    """Every problem of every enrichment config, found in one pass; `problems` lists them."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "".join(f"\n  - {problem}" for problem in self.problems)
        super().__init__("enrichments", f"{count} problem{'s' if count != 1 else ''} in the enrichment configs:{lines}")


def _parse_json(path: Path, problems: list[ConfigProblem]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(ConfigProblem(str(path), "(file)", f"cannot be read: {exc.strerror or exc}",
                                      "check the path and its permissions"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(ConfigProblem(str(path), "(file)", f"is not valid JSON: {exc}", "fix the JSON syntax"))
    return None


def read_enrichment_configs(source: Path | str) -> list[tuple[str, Any]]:
    """The `(where, config)` pairs in a directory of JSON files (sorted by name), a container file, or one config.

    Unreadable files and bad JSON are raised as EnrichmentConfigErrors, all together.
    """
    problems: list[ConfigProblem] = []
    documents = _read(Path(source), problems)
    if problems:
        raise EnrichmentConfigErrors(problems)
    return documents


def _read(path: Path, problems: list[ConfigProblem]) -> list[tuple[str, Any]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json" and not p.name.startswith("."))
        if not files:
            problems.append(ConfigProblem(str(path), "(directory)", "has no .json enrichment configs",
                                          "add enrichment JSON files, or leave the setting out for the defaults"))
    elif path.is_file():
        files = [path]
    else:
        problems.append(ConfigProblem(str(path), "(path)", "does not exist",
                                      "give a directory of enrichment JSONs or an enrichments file"))
        return []
    documents: list[tuple[str, Any]] = []
    for file in files:
        document = _parse_json(file, problems)
        if document is not None:
            documents.append((str(file), document))  # a container is expanded by build_enrichments
    return documents


def _key_or_none(schema: Any) -> SchemaKey | None:
    if not isinstance(schema, str):
        return None
    try:
        return SchemaKey.parse(schema)
    except InvalidSchemaKey:
        return None


def _path_key(path: str) -> str:
    """A JSON path from a data report (`$.parameters.anonOctets`) as a config key (`parameters.anonOctets`)."""
    key = path.removeprefix("$").removeprefix(".")
    return key or "(top level)"


def _report_problem(where: str, name: str, report: Mapping[str, Any], fix: str) -> ConfigProblem:
    message = str(report.get("message", "invalid"))
    path = str(report.get("path", "$"))
    # The validator's message starts with the exact path ("$.parameters.fields.mktTerm: is missing …"),
    # more precise than `path` for a missing property (which names the object that lacks it).
    head, separator, rest = message.partition(": ")
    if separator and head.startswith("$"):
        path, message = head, rest
    key = _path_key(path)
    return ConfigProblem(where, f"{name}.{key}" if key != "(top level)" else name, message, fix)


def _iglu_problems(where: str, error: Exception) -> list[ConfigProblem]:
    if isinstance(error, NotIglu):
        return [ConfigProblem(where, "schema", f"not a self-describing JSON ({error.code}: {error})",
                              'write {"schema": "iglu:com.snowplowanalytics.snowplow/<name>/jsonschema/x-y-z", '
                              '"data": {...}}')]
    if isinstance(error, CriterionMismatch):
        return [ConfigProblem(where, "schema", f"{error.key.uri} is not {error.criterion}",
                              f"use a schema matching {error.criterion}")]
    if isinstance(error, ResolutionError):
        return [ConfigProblem(where, "schema", f"schema {error.key.uri} was not found in any Iglu repository",
                              "check the schema URI, or add a repository that has it to the resolver config")]
    if isinstance(error, ValidationError):
        if error.schema_issues:
            return [ConfigProblem(where, "schema", f"the schema {error.key.uri} is invalid: {issue.get('message')}",
                                  "fix the schema in your Iglu repository") for issue in error.schema_issues]
        fix = f"make the config valid against {error.key.uri}"
        return [_report_problem(where, error.key.name, report, fix)
                for report in error.data_reports or [{"message": str(error)}]]
    return [ConfigProblem(where, "schema", str(error), "check the config's schema")]


def _expand(where: str, document: Any, resolver: SdjValidator,
            problems: list[ConfigProblem]) -> list[tuple[str, Any]]:
    """A container becomes its items (`file[0]`, `file[1]`, …); any other document stays as it is."""
    key = _key_or_none(document.get("schema")) if isinstance(document, dict) else None
    if key is None or not CONTAINER_CRITERION.matches(key):
        return [(where, document)]
    try:
        resolver.validate_sdj(document, CONTAINER_CRITERION)
    except (NotIglu, CriterionMismatch, IgluError) as exc:
        problems.extend(_iglu_problems(where, exc))
        return []
    return [(f"{where}[{index}]", item) for index, item in enumerate(document["data"])]


def build_enrichments(
    documents: Iterable[tuple[str, Any]],
    resolver: SdjValidator,
    assets: AssetStore,
    registry: Registry[type[Enrichment]] = ENRICHMENTS,
    problems: Sequence[ConfigProblem] = (),
) -> dict[str, Enrichment]:
    """Validate and build `(where, config)` documents; raise EnrichmentConfigErrors with every problem,
    after any `problems` found before (files that could not be read)."""
    problems = list(problems)
    built: dict[str, Enrichment] = {}
    origin: dict[str, str] = {}
    for where, document in (item for pair in documents for item in _expand(*pair, resolver, problems)):
        try:
            validated = resolver.validate_sdj(document)
        except (NotIglu, CriterionMismatch, IgluError) as exc:
            problems.extend(_iglu_problems(where, exc))
            continue
        key: SchemaKey = validated.key
        data = document["data"]
        name = key.name
        if not isinstance(data, Mapping):
            problems.append(ConfigProblem(where, "data", "must be an object", "see the enrichment's documentation"))
            continue
        if data.get("enabled") is False:
            _log.info("enrichment disabled", enrichment=name, source=where)
            continue
        if name not in registry:
            _log.warning("unknown enrichment ignored", enrichment=name, schema=key.uri, source=where,
                         known=registry.names())
            continue
        enrichment_class = registry.get(name)
        if not enrichment_class.supported_schema.matches(key):
            problems.append(ConfigProblem(
                where, "schema", f"{key.uri} is not a version Plowline's {name} supports",
                f"use a schema matching {enrichment_class.supported_schema}"))
            continue
        if name in origin:
            problems.append(ConfigProblem(where, "schema", f"{name} is configured twice (also in {origin[name]})",
                                          "keep one config per enrichment"))
            continue
        origin[name] = where
        parameters = data.get("parameters") or {}
        # Keys beside `parameters` (PII's anonymousOnly, emitEvent) reach the enrichment with them.
        extras = {k: v for k, v in data.items() if k not in _ENVELOPE}
        if extras:
            parameters = {**parameters, **extras}
        try:
            built[name] = enrichment_class.from_config(parameters, assets)
        except EnrichmentConfigError as exc:
            where_key = exc.key if exc.key.startswith(f"{name}.") else f"{name}.{exc.key}"
            problems.append(ConfigProblem(where, where_key, exc.problem, exc.fix))
    if problems:
        raise EnrichmentConfigErrors(sorted(problems, key=lambda problem: problem.source))  # stable: file by file
    return built


def load_enrichments(
    source: Path | str | None,
    resolver: SdjValidator,
    assets: AssetStore | None = None,
    *,
    cache_dir: Path | str | None = None,
    registry: Registry[type[Enrichment]] = ENRICHMENTS,
) -> dict[str, Enrichment]:
    """Build the enrichments configured at `source` (directory, container or single file); None → the defaults.

    Without `assets`, data files are found by a LocalAssetStore relative to the config directory,
    downloading http(s) assets once into `cache_dir` (default: a `plowline-assets` temp folder).
    """
    problems: list[ConfigProblem] = []
    if source is None:
        documents: list[tuple[str, Any]] = [
            (f"default {config['data']['name']}", config) for config in default_enrichment_configs()]
        base_dir = DEFAULT_ENRICHMENTS_DIR
    else:
        path = Path(source)
        documents = _read(path, problems)
        base_dir = path if path.is_dir() else path.parent
    if assets is None:
        cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "plowline-assets"
        assets = LocalAssetStore(base_dir, cache)
    return build_enrichments(documents, resolver, assets, registry, problems)


@cache
def _default_texts() -> tuple[str, ...]:
    return tuple(path.read_text(encoding="utf-8") for path in sorted(DEFAULT_ENRICHMENTS_DIR.glob("*.json")))


def default_enrichment_configs() -> list[dict[str, Any]]:
    """The configs used when none are given (fresh copies): ua_parser, user_agent_utils, referer_parser
    (shipped database, no internal domains), campaign_attribution (utm_*, default click ids),
    event_fingerprint (MD5 without eid, nuid, stm, cv). No IP lookups: no MaxMind database ships."""
    return [json.loads(text) for text in _default_texts()]
