"""Resolver: finds schemas in repositories by priority, caches them with TTL, and validates data against them."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import Lock
from typing import Any, Self

from plowline.iglu.errors import (
    CriterionMismatch,
    InvalidSchemaDocument,
    RepositoryUnavailable,
    ResolutionError,
    ValidationError,
)
from plowline.iglu.repositories import EmbeddedRepository, LocalRepository, Repository, StaticHttpRepository
from plowline.iglu.resolver_config import parse_resolver_config
from plowline.iglu.validation import (
    DEFAULT_MAX_JSON_DEPTH,
    CompiledSchema,
    ValidatedSdj,
    ValidatorCache,
    compile_schema,
    depth_report,
    json_depth_exceeds,
    split_sdj,
)
from plowline.schema_key import InvalidSchemaKey, SchemaCriterion, SchemaKey, SchemaVer

__all__ = ["IGLU_CENTRAL", "ResolvedSchema", "Resolver", "ValidatedSdj"]

IGLU_CENTRAL = "http://iglucentral.com"

_IGLU_URL = re.compile(r"https?://[^#]*/schemas/([^/#]+)/([^/#]+)/([^/#]+)/([^/#]+)/?(?:#.*)?")


@dataclass(frozen=True, slots=True)
class ResolvedSchema:
    """The schema to validate `key` with: its own, or the one its `$supersededBy` names."""

    key: SchemaKey
    schema: dict[str, Any]
    superseded_by: SchemaVer | None = None

    @property
    def schema_key(self) -> SchemaKey:
        """The key of the schema actually used."""
        if self.superseded_by is None:
            return self.key
        return SchemaKey(self.key.vendor, self.key.name, self.key.format, self.superseded_by)


@dataclass(frozen=True, slots=True)
class _Miss:
    history: list[dict[str, Any]]


class _Cache:
    """LRU with a TTL per entry; size 0 disables it."""

    def __init__(self, size: int, ttl: float | None, clock: Callable[[], float]) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[SchemaKey, tuple[float, dict[str, Any] | _Miss]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: SchemaKey) -> dict[str, Any] | _Miss | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if self.ttl is not None and self._clock() - stored_at >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: SchemaKey, value: dict[str, Any] | _Miss) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(repository: Repository, attempts: int, error: dict[str, Any]) -> dict[str, Any]:
    return {"repository": repository.name, "errors": [error], "attempts": attempts, "lastAttempt": _now_iso()}


def _self_mismatch(key: SchemaKey, schema: dict[str, Any]) -> str | None:
    described = schema.get("self")
    if described is None:
        return None
    if not isinstance(described, dict):
        return "its `self` is not an object"
    named = (described.get("vendor"), described.get("name"), described.get("format"), described.get("version"))
    if named != (key.vendor, key.name, key.format, str(key.version)):
        return f"its `self` describes iglu:{'/'.join(str(part) for part in named)}, not {key.uri}"
    return None


class Resolver:
    """Iglu client: `lookup`, `resolve` ($supersededBy), `validate`, `validate_sdj`. Safe to share between threads.

    Lookup order for a schema (spec/enrich.md 2.9, Iglu's schema-resolution algorithm):
      1. `preferred`, in order: by default the schemas shipped in Plowline, so the pipeline's own schemas
         never need the network; `from_config`/`default` add the user's `--iglu DIR` folders after them;
      2. `repositories` sorted by: vendorPrefixes matching the schema's vendor first, then local (embedded)
         before HTTP, then ascending `priority`.
    The first repository that has the schema wins. A repository that cannot answer (RepositoryUnavailable)
    is retried `retries` more times with exponential backoff from `retry_backoff` seconds; if no other
    repository has the schema, lookup raises RepositoryUnavailable (transient: enrich 6.x stops rather than
    make bad rows). Otherwise a miss raises ResolutionError carrying Snowplow's lookupHistory. Hits and
    misses are cached in one LRU of `cache_size` entries expiring after `cache_ttl` seconds (never if None);
    unavailability is not cached. A schema whose `self` names another schema than the one asked for counts
    as that repository not having it (a RepoFailure in lookupHistory); a schema without `self` is accepted.

    `clock` (monotonic seconds) and `sleep` are injectable for tests. Returned schemas are the cached
    objects: do not mutate them.
    """

    def __init__(
        self,
        repositories: Sequence[Repository] = (),
        *,
        preferred: Sequence[Repository] | None = None,
        cache_size: int = 500,
        cache_ttl: float | None = 600,
        retries: int = 3,
        retry_backoff: float = 0.1,
        unavailable_cooldown: float = 30.0,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.preferred: tuple[Repository, ...] = (
            (EmbeddedRepository(),) if preferred is None else tuple(preferred)
        )
        self.repositories: tuple[Repository, ...] = tuple(repositories)
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.unavailable_cooldown = unavailable_cooldown
        self._clock = clock
        # A repository that just failed every retry is not asked again for a while, so an outage
        # costs one timed-out lookup per cooldown, not one per event.
        self._down_until: dict[int, tuple[float, str]] = {}
        self.max_json_depth = max_json_depth
        self._sleep = sleep
        self._cache = _Cache(cache_size, cache_ttl, clock)
        self._validators = ValidatorCache(max(cache_size, 64))
        self._order: dict[str, tuple[Repository, ...]] = {}

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | str | Path, extra_local_dirs: Iterable[str | Path] = (), **options: Any
    ) -> Self:
        """Build from a Snowplow resolver config: a dict, JSON text, or a file path. Raise ConfigError.

        `extra_local_dirs` (the user's `--iglu DIR`) are asked right after the embedded schemas.
        `options` go to the constructor (retries, max_json_depth, ...).
        """
        settings = parse_resolver_config(config)
        preferred: list[Repository] = [EmbeddedRepository(), *(LocalRepository(d) for d in extra_local_dirs)]
        return cls(settings.repositories, preferred=preferred, cache_size=settings.cache_size,
                   cache_ttl=settings.cache_ttl, **options)

    @classmethod
    def default(cls, extra_local_dirs: Iterable[str | Path] = (), **options: Any) -> Self:
        """Embedded schemas, then `extra_local_dirs`, then Iglu Central over HTTP, as Snowplow's default config."""
        central = StaticHttpRepository(IGLU_CENTRAL, name="Iglu Central", vendor_prefixes=["com.snowplowanalytics"])
        preferred: list[Repository] = [EmbeddedRepository(), *(LocalRepository(d) for d in extra_local_dirs)]
        options.setdefault("cache_size", 500)
        options.setdefault("cache_ttl", 600)
        return cls([central], preferred=preferred, **options)

    @classmethod
    def configured(
        cls, config: Mapping[str, Any] | str | Path | None, extra_local_dirs: Iterable[str | Path] = (), **options: Any
    ) -> Self:
        """`from_config(config)`, or `default()` when no resolver config is given (enrich.resolver unset)."""
        if config is not None:
            return cls.from_config(config, extra_local_dirs=extra_local_dirs, **options)
        return cls.default(extra_local_dirs=extra_local_dirs, **options)

    def repositories_for(self, vendor: str) -> tuple[Repository, ...]:
        """The repositories asked for a schema of `vendor`, in order."""
        order = self._order.get(vendor)
        if order is None:
            ranked = sorted(
                self.repositories,
                key=lambda repo: (
                    not any(vendor.startswith(prefix) for prefix in repo.vendor_prefixes),
                    repo.class_priority,
                    repo.priority,
                ),
            )
            order = self.preferred + tuple(ranked)
            if len(self._order) >= 1024:
                self._order.clear()
            self._order[vendor] = order
        return order

    def lookup(self, key: SchemaKey) -> dict[str, Any]:
        """The schema for `key`. Raise ResolutionError (no repository has it) or RepositoryUnavailable."""
        cached = self._cache.get(key)
        if cached is not None:
            if isinstance(cached, _Miss):
                raise ResolutionError(key, cached.history)
            return cached
        history: list[dict[str, Any]] = []
        unavailable: list[str] = []
        for repository in self.repositories_for(key.vendor):
            schema, record, down = self._ask(repository, key)
            if schema is not None:
                self._cache.put(key, schema)
                return schema
            history.append(record)
            if down:
                unavailable.append(record["errors"][0]["message"])
        history.sort(key=lambda entry: str(entry["repository"]))
        if unavailable:
            raise RepositoryUnavailable(f"{key.uri} not found, and some repositories could not be asked: "
                                        + "; ".join(unavailable))
        self._cache.put(key, _Miss(history))
        raise ResolutionError(key, history)

    def _ask(self, repository: Repository, key: SchemaKey) -> tuple[dict[str, Any] | None, dict[str, Any], bool]:
        """One repository's answer: the schema, or its lookupHistory record and whether it was unreachable."""
        down = self._down_until.get(id(repository))
        if down is not None and self._clock() < down[0]:
            return None, _record(repository, 0, {"error": "RepoFailure", "message": down[1]}), True
        attempts = 0
        while True:
            attempts += 1
            try:
                schema = repository.lookup(key)
            except RepositoryUnavailable as exc:
                if attempts <= self.retries:
                    self._sleep(self.retry_backoff * 2 ** (attempts - 1))
                    continue
                self._down_until[id(repository)] = (self._clock() + self.unavailable_cooldown, str(exc))
                return None, _record(repository, attempts, {"error": "RepoFailure", "message": str(exc)}), True
            except InvalidSchemaDocument as exc:
                return None, _record(repository, attempts, {"error": "RepoFailure", "message": str(exc)}), False
            self._down_until.pop(id(repository), None)
            if schema is None:
                return None, _record(repository, attempts, {"error": "NotFound"}), False
            problem = _self_mismatch(key, schema)
            if problem is not None:
                message = f"{repository.name}: {key.path} is not that schema: {problem}"
                return None, _record(repository, attempts, {"error": "RepoFailure", "message": message}), False
            return schema, {}, False

    def resolve(self, key: SchemaKey) -> ResolvedSchema:
        """`lookup`, following one `$supersededBy` (as Snowplow's client does) to the schema to validate with."""
        schema = self.lookup(key)
        superseding = schema.get("$supersededBy")
        if superseding is None:
            return ResolvedSchema(key, schema)
        try:
            version = SchemaVer.parse(superseding) if isinstance(superseding, str) else None
        except InvalidSchemaKey:
            version = None
        if version is None or version <= key.version:
            raise ValidationError(key, schema_issues=[{
                "path": "$.$supersededBy",
                "message": f"$supersededBy {superseding!r} is not a SchemaVer greater than {key.version}",
            }])
        try:
            newer = self.lookup(SchemaKey(key.vendor, key.name, key.format, version))
        except ResolutionError as exc:
            raise ResolutionError(key, exc.lookup_history) from exc
        return ResolvedSchema(key, newer, version)

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey]:
        """Every `jsonschema` version of one model that the repositories able to list know, ascending."""
        found: set[SchemaKey] = set()
        for repository in self.repositories_for(vendor):
            listed = repository.list_versions(vendor, name, model)
            if listed:
                found.update(listed)
        return sorted(found, key=lambda key: key.version)

    def compiled(self, key: SchemaKey) -> tuple[ResolvedSchema, CompiledSchema]:
        """The resolved schema for `key` and its compiled validator (cached). Raise ValidationError on schema issues."""
        resolved = self.resolve(key)
        used = resolved.schema_key
        compiled = self._validators.get(used, resolved.schema)
        if compiled is None:
            transient: list[RepositoryUnavailable] = []
            try:
                compiled = compile_schema(used, resolved.schema, self._retriever(transient))
            except ValidationError as exc:
                if transient:
                    raise transient[0] from exc
                compiled = exc
            self._validators.put(used, resolved.schema, compiled)
        if isinstance(compiled, ValidationError):
            raise ValidationError(key, schema_issues=compiled.schema_issues,
                                  superseded_by=None if resolved.superseded_by is None else str(resolved.superseded_by))
        return resolved, compiled

    def _retriever(self, transient: list[RepositoryUnavailable]) -> Callable[[str], Any]:
        def retrieve(uri: str) -> Any:
            match = _IGLU_URL.fullmatch(uri)
            if match is None:
                raise ValueError(f"{uri}: only Iglu schema URLs (…/schemas/vendor/name/format/M-R-A) can be referenced")
            try:
                key = SchemaKey.parse("iglu:" + "/".join(match.groups()))
                return self.lookup(key)
            except InvalidSchemaKey as exc:
                raise ValueError(f"{uri}: {exc}") from exc
            except ResolutionError as exc:
                raise ValueError(f"{uri}: {exc}") from exc
            except RepositoryUnavailable as exc:
                transient.append(exc)
                raise ValueError(f"{uri}: {exc}") from exc

        return retrieve

    def _check(self, key: SchemaKey, data: Any) -> SchemaVer | None:
        # Hot path (a cached, compiled, not superseded schema) skips building ResolvedSchema: it runs per entity.
        schema = self.lookup(key)
        if "$supersededBy" not in schema:
            cached = self._validators.get(key, schema)
            if isinstance(cached, CompiledSchema):
                reports = cached.data_reports(data)
                if reports:
                    raise ValidationError(key, data_reports=reports)
                return None
        resolved, compiled = self.compiled(key)
        reports = compiled.data_reports(data)
        if reports:
            superseded = None if resolved.superseded_by is None else str(resolved.superseded_by)
            raise ValidationError(key, data_reports=reports, superseded_by=superseded)
        return resolved.superseded_by

    def validate(self, key: SchemaKey, data: Any) -> None:
        """Validate `data` against the schema for `key` (or its superseding one).

        Raise ValidationError with every data report, or with schema issues; ResolutionError;
        RepositoryUnavailable.
        """
        self._check(key, data)

    def validate_sdj(
        self, instance: Any, criterion: SchemaCriterion | None = None, *, depth_known_within: int | None = None
    ) -> ValidatedSdj:
        """Check a self-describing JSON: shape (NotIglu), `criterion` (CriterionMismatch), depth, then validate.

        `depth_known_within`: a bound the caller already knows on the instance's nesting (for example
        the brackets in the text it was parsed from); within max_json_depth, the depth walk is skipped.
        """
        key, data = split_sdj(instance)
        if criterion is not None and not criterion.matches(key):
            raise CriterionMismatch(key, criterion)
        if (depth_known_within is None or depth_known_within > self.max_json_depth) and json_depth_exceeds(
            instance, self.max_json_depth
        ):
            raise ValidationError(key, data_reports=[depth_report(self.max_json_depth)])
        return ValidatedSdj(key, data, self._check(key, data))

    def clear_cache(self) -> None:
        """Forget cached schemas and misses (compiled validators are kept while their schema is unchanged)."""
        self._cache.clear()

    def close(self) -> None:
        """Release HTTP connections."""
        for repository in {id(repo): repo for repo in self.preferred + self.repositories}.values():
            repository.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Resolver(preferred={list(self.preferred)!r}, repositories={list(self.repositories)!r})"
