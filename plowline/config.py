"""Settings: one typed tree loaded from plowline.toml and PLOWLINE_* environment variables.

Precedence: explicit arguments (command-line flags) > environment > TOML > defaults. Every key has
a default, so no file is needed to start. Nested keys use `__` in the environment, e.g.
`PLOWLINE_COLLECTOR__PORT=8080` or `PLOWLINE_COLLECTOR__COOKIE__SECURE=false`. Collector keys follow
the Snowplow collector's configuration (`collector.*` in its HOCON), in snake_case.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from plowline.errors import ConfigError

DEFAULT_CONFIG_FILE = "plowline.toml"
CONFIG_FILE_ENV = "PLOWLINE_CONFIG"
#: Set by `plowline up` for its children: the parent's effective settings as JSON, used as they are.
EFFECTIVE_SETTINGS_ENV = "PLOWLINE_EFFECTIVE_SETTINGS"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CookieSettings(_Section):
    """The `sp` network_userid cookie (spec/protocol.md 3.4)."""

    enabled: bool = Field(True, description="Set the network_userid cookie on tracking responses.")
    name: str = Field("sp", description="Cookie name.")
    expiration_days: float = Field(365, gt=0, description="Cookie lifetime, renewed on every request.")
    domains: list[str] = Field(
        default_factory=list,
        description="Cookie domains; the first one that matches the request's Origin host is used.",
    )
    fallback_domain: str | None = Field(None, description="Domain when no configured domain matches.")
    secure: bool = Field(True, description="Secure attribute.")
    http_only: bool = Field(True, description="HttpOnly attribute.")
    same_site: Literal["None", "Lax", "Strict"] | None = Field("None", description="SameSite attribute.")
    client_cookie_name: str | None = Field(
        None, description="Also set a JavaScript-readable copy of the cookie under this name."
    )

    @field_validator("same_site", mode="before")
    @classmethod
    def _same_site_any_case(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in {"none", "lax", "strict"}:
            return value.capitalize()
        return value

    @field_validator("domains")
    @classmethod
    def _no_leading_dot(cls, value: list[str]) -> list[str]:
        for domain in value:
            if domain.startswith("."):
                raise ValueError(f"domain {domain!r} must not start with a dot; write {domain[1:]!r}")
        return value


class DoNotTrackCookieSettings(_Section):
    """A cookie whose presence (value matching a regex) stops collection for that browser."""

    enabled: bool = Field(False, description="Honour the do-not-track cookie.")
    name: str = Field("", description="Name of the do-not-track cookie.")
    value: str = Field("", description="Regular expression the whole cookie value must match.")

    @field_validator("value")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class CookieBounceSettings(_Section):
    """Third-party-cookie bounce (spec/protocol.md 3.5)."""

    enabled: bool = Field(False, description="Bounce pixel requests without an id to test for cookies.")
    name: str = Field("n3pc", description="Querystring parameter marking the bounced request.")
    fallback_network_user_id: str = Field(
        "00000000-0000-4000-A000-000000000000", description="Network user id when cookies are blocked."
    )
    forwarded_protocol_header: str | None = Field(
        None, description="Header (e.g. X-Forwarded-Proto) giving the scheme of the bounce Location."
    )


class RootResponseSettings(_Section):
    """What GET / answers; off by default (404)."""

    enabled: bool = False
    status_code: int = Field(302, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""


class CrossDomainSettings(_Section):
    """The Flash /crossdomain.xml policy; off by default (404)."""

    enabled: bool = False
    domains: list[str] = Field(default_factory=lambda: ["*"])
    secure: bool = True


class CorsSettings(_Section):
    """CORS preflight caching."""

    access_control_max_age_s: int = Field(3600, ge=-1, description="Access-Control-Max-Age; -1 disables.")


class HstsSettings(_Section):
    """Strict-Transport-Security on every response when enabled."""

    enable: bool = False
    max_age_s: int = Field(365 * 24 * 3600, ge=0)


class NetworkingSettings(_Section):
    """Request limits (spec/protocol.md 3.11 and 3.12)."""

    max_request_line_length: int = Field(20480, gt=0, description="Longer request lines get 400.")
    max_headers_length: int = Field(40960, gt=0, description="Larger header sections get 400.")
    max_payload_size: int = Field(
        1048576, gt=0, description="Records above this become size_violation bad rows (HTTP 200)."
    )
    drop_payload_size: int = Field(2097152, gt=0, description="Bodies above this are refused with 413.")
    response_header_timeout_s: float = Field(
        30, gt=0, description="A tracking request not answered in this time gets 408."
    )

    @model_validator(mode="after")
    def _ordered(self) -> NetworkingSettings:
        if self.drop_payload_size < self.max_payload_size:
            raise ValueError("drop_payload_size must be >= max_payload_size")
        return self


class TrackerScriptSettings(_Section):
    """plowline.js, Plowline's browser tracker, served by the collector at `path`."""

    enabled: bool = Field(True, description="Serve the JavaScript tracker.")
    path: str = Field("/plowline.js", pattern=r"^/[^/]+$", description="One-segment URL path the script is served at.")
    file: Path | None = Field(
        None, description="Serve this file instead of the plowline.js shipped in the package (e.g. a custom build)."
    )
    max_age_s: int = Field(3600, ge=0, description="Cache-Control max-age; browsers revalidate with the ETag after.")


class CollectorSettings(_Section):
    """The HTTP collector (spec/protocol.md section 3)."""

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 for all).")
    port: int = Field(9090, ge=0, le=65535, description="TCP port.")
    workers: int = Field(1, ge=1, le=256, description="Server worker processes, each with its own writer.")
    paths: dict[str, str] = Field(
        default_factory=dict,
        description="Custom two-segment paths mapped to canonical ones (/com.snowplowanalytics.snowplow/tp2, ...).",
    )
    enable_default_redirect: bool = Field(False, description="Serve /r/tp2 click redirects.")
    redirect_domains: list[str] = Field(
        default_factory=list, description="Hosts /r/tp2 may redirect to (exact match); empty = none."
    )
    cookie: CookieSettings = Field(default_factory=CookieSettings)
    do_not_track_cookie: DoNotTrackCookieSettings = Field(default_factory=DoNotTrackCookieSettings)
    cookie_bounce: CookieBounceSettings = Field(default_factory=CookieBounceSettings)
    root_response: RootResponseSettings = Field(default_factory=RootResponseSettings)
    cross_domain: CrossDomainSettings = Field(default_factory=CrossDomainSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    hsts: HstsSettings = Field(default_factory=HstsSettings)
    networking: NetworkingSettings = Field(default_factory=NetworkingSettings)
    tracker_script: TrackerScriptSettings = Field(default_factory=TrackerScriptSettings)

    @field_validator("paths")
    @classmethod
    def _two_segment_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            for path in (source, target):
                if not re.fullmatch(r"/[^/]+/[^/]+", path):
                    raise ValueError(f"{path!r} must be a two-segment path like /vendor/version")
        return value


class StreamSettings(_Section):
    """Stream URLs; empty means a file log under the data dir."""

    raw: str = Field("", description="Raw CollectorPayload records (default file://DATA_DIR/streams/raw).")
    enriched: str = Field("", description="Enriched TSV events (default file://DATA_DIR/streams/enriched).")
    bad: str = Field("", description="Bad rows of collector and enrich (default file://DATA_DIR/streams/bad).")


class EnrichSettings(_Section):
    """Enrich: raw records to enriched events and bad rows (spec/enrich.md)."""

    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=256,
        description="Worker processes, one consumer each (default: the number of cores).",
    )
    resolver: Path | None = Field(
        None, description="Snowplow Iglu resolver-config JSON (default: embedded schemas + Iglu Central)."
    )
    iglu: list[Path] = Field(
        default_factory=list, description="Local Iglu repositories (static layout DIR/schemas/...), searched first."
    )
    enrichments: Path | None = Field(
        None, description="Directory of Snowplow enrichment JSON configs (default: Plowline's default set)."
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="Raw records per batch.")


class FilesLoaderSettings(_Section):
    """The files loader: gzip TSV and bad-row JSON, partitioned by hour."""

    path: str = Field("", description="Local directory or s3://bucket/prefix (default DATA_DIR).")
    gzip: bool = Field(True, description="Write .tsv.gz / .json.gz files.")
    gzip_level: int = Field(
        6,
        ge=1,
        le=9,
        description="zlib compression level of those files. 6 (zlib's default) compresses enriched TSV ~13x for "
        "~18 us of CPU per event on a 2-core reference machine; 1 halves that CPU for files ~27% larger; 9 "
        "costs twice the CPU of 6 for files ~3% smaller.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="fsspec options for remote paths, e.g. endpoint_url, key, secret."
    )


class ParquetLoaderSettings(_Section):
    """The parquet loader: a lake partitioned by date."""

    path: str = Field("", description="Local directory or s3://bucket/prefix (default DATA_DIR/lake).")
    storage_options: dict[str, str] = Field(default_factory=dict, description="fsspec options for remote paths.")


class DuckDBLoaderSettings(_Section):
    """The embedded warehouse."""

    path: str = Field("", description="DuckDB database file (default DATA_DIR/warehouse.duckdb).")
    checkpoint_threshold_mb: int = Field(
        256,
        ge=1,
        le=65_536,
        description="Write-ahead log size (MiB) at which DuckDB checkpoints. A checkpoint rewrites the primary-key "
        "index, so a larger threshold loads faster (DuckDB's own default, 16, halves the rate) at the price "
        "of a longer log replay after a crash.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=1024,
        description="Threads DuckDB may use in the process that holds the warehouse (its loader), for loading and for "
        "the queries it answers for other processes. One thread loads a batch with 25-30% less CPU than two on a "
        "2-core machine, where the load competes with the rest of the pipeline; raise it on a larger machine "
        "where the speed of big queries matters more than the CPU of loading.",
    )


class PostgresLoaderSettings(_Section):
    """PostgreSQL atomic.events."""

    dsn: str = Field("", description="libpq connection string, e.g. postgresql://user@host:5432/db.")
    schema_name: str = Field("atomic", description="Schema of the events and bad_rows tables.")


class StorageSettings(_Section):
    """Which loaders run, and each loader's settings."""

    loaders: list[str] = Field(
        default_factory=lambda: ["files", "duckdb"],
        description="Loaders that `plowline up` and `plowline load` run: files, parquet, duckdb, postgres.",
    )
    batch_size: int = Field(1000, ge=1, le=1_000_000, description="Records per load batch.")
    files: FilesLoaderSettings = Field(default_factory=FilesLoaderSettings)
    parquet: ParquetLoaderSettings = Field(default_factory=ParquetLoaderSettings)
    duckdb: DuckDBLoaderSettings = Field(default_factory=DuckDBLoaderSettings)
    postgres: PostgresLoaderSettings = Field(default_factory=PostgresLoaderSettings)


class DashboardSettings(_Section):
    """The read-only web dashboard at /dashboard (plowline/analytics/dashboard)."""

    enabled: bool = Field(True, description="Serve /dashboard on the collector's port under `plowline up`.")
    token: str = Field(
        "",
        description="Access token (Authorization: Bearer, or ?token= once). Required when the host is not loopback.",
    )
    refresh_s: float = Field(5.0, ge=1, le=3600, description="How often the page refreshes its data, in seconds.")


class MicroSettings(_Section):
    """The Snowplow Micro compatible API (/micro/all, /micro/good, /micro/bad, /micro/reset)."""

    enabled: bool = Field(False, description="Serve the /micro/* API on the collector's port.")


class ModelsSettings(_Section):
    """The analytics data models (derived.page_views, derived.sessions, derived.users); `plowline models run`."""

    target: Literal["auto", "duckdb", "postgres"] = Field(
        "auto",
        description="Warehouse the models read and write: duckdb, postgres, or auto (duckdb when it is among "
        "storage.loaders, else postgres when it is).",
    )
    heartbeat_s: int = Field(
        10, ge=1, le=3600, description="The trackers' page-ping interval (enableActivityTracking heartbeatDelay)."
    )
    min_visit_length_s: int = Field(
        5, ge=0, le=3600, description="The trackers' first-ping delay (enableActivityTracking minimumVisitLength)."
    )
    lookback_window_s: int = Field(
        600,
        ge=0,
        description="Each run also redoes sessions with events loaded this long before the last run's high-water "
        "mark (load_tstamp), for batches that committed after a run but were stamped before it.",
    )
    every_s: float = Field(
        300, ge=0, description="How often `plowline up` runs the models, in seconds; 0 turns the schedule off."
    )


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="PLOWLINE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("plowline-data"), description="Where the embedded pipeline keeps its data.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = Field("console", description="Structured log rendering.")
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    micro: MicroSettings = Field(default_factory=MicroSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _TOML_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def raw_stream_url(self) -> str:
        return self.streams.raw or f"file://{(self.data_dir / 'streams' / 'raw').resolve()}"

    def enriched_stream_url(self) -> str:
        return self.streams.enriched or f"file://{(self.data_dir / 'streams' / 'enriched').resolve()}"

    def bad_stream_url(self) -> str:
        return self.streams.bad or f"file://{(self.data_dir / 'streams' / 'bad').resolve()}"


# The TOML path for the Settings() call in progress; pydantic-settings asks the class for its
# sources, so the path travels here rather than as an argument.
_TOML_FILE: dict[str, Path | None] = {}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings once (in the CLI); raise ConfigError naming the key and the fix.

    `path` is the TOML file; without it, $PLOWLINE_CONFIG, then ./plowline.toml if it exists.
    `overrides` are nested dicts from command-line flags and win over everything.
    """
    inherited = os.environ.get(EFFECTIVE_SETTINGS_ENV)
    if inherited and path is None and not overrides:
        return settings_from_json(inherited)
    toml_path: Path | None
    if path is not None:
        toml_path = Path(path)
        if not toml_path.is_file():
            raise ConfigError("--config", f"file {str(toml_path)!r} does not exist", "give an existing TOML file")
    elif os.environ.get(CONFIG_FILE_ENV):
        toml_path = Path(os.environ[CONFIG_FILE_ENV])
        if not toml_path.is_file():
            raise ConfigError(CONFIG_FILE_ENV, f"file {str(toml_path)!r} does not exist", "unset it or fix the path")
    else:
        toml_path = Path(DEFAULT_CONFIG_FILE) if Path(DEFAULT_CONFIG_FILE).is_file() else None
    _TOML_FILE["path"] = toml_path
    try:
        # Init kwargs replace whole sections, so merge flag overrides over what env and TOML give.
        base = Settings()
        if overrides:
            return Settings(**_deep_merge(base.model_dump(), overrides))
        return base
    except ValidationError as exc:
        raise _config_error(exc, toml_path) from None
    except (OSError, ValueError) as exc:  # unreadable file, TOML syntax error
        raise ConfigError(str(toml_path), f"cannot read configuration: {exc}", "fix the TOML syntax") from None
    finally:
        _TOML_FILE.pop("path", None)


def _config_error(exc: ValidationError, toml_path: Path | None) -> ConfigError:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        env = "PLOWLINE_" + "__".join(str(part).upper() for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{key}: {message} (input {error.get('input')!r}; set it in "
                        f"{toml_path or DEFAULT_CONFIG_FILE} or {env})")
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    fix = "see `plowline config docs` for every key, its type and default"
    return ConfigError(key, "invalid configuration:\n  " + "\n  ".join(problems), fix)


def settings_to_json(settings: Settings) -> bytes:
    """The effective configuration as JSON (for `config show` and for passing to worker processes)."""
    return orjson.dumps(settings.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


def settings_from_json(data: bytes | str) -> Settings:
    """Rebuild settings in a worker process from `settings_to_json` output, skipping env and TOML."""
    return Settings.model_validate(orjson.loads(data))
