"""What every `plowline` command shares: the Typer apps, the common options, and settings from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from plowline import __version__
from plowline.config import Settings, load_config
from plowline.errors import ConfigError

app = typer.Typer(
    name="plowline",
    help="Plowline: a Snowplow-compatible behavioural-event pipeline (collector, enrich, storage, analytics).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
models_app = typer.Typer(
    help="The analytics data models: derived.page_views, derived.sessions and derived.users.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $PLOWLINE_CONFIG, then ./plowline.toml)."),
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default: ./plowline-data).")]
PortOption = Annotated[int | None, typer.Option("--port", help="Collector port (default: 9090).")]
HostOption = Annotated[str | None, typer.Option("--host", help="Collector interface (default: 127.0.0.1).")]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Collector worker processes (default: 1).", min=1)]

# soft_wrap: messages (DuckDB's, paths) stay on one line for scripts that read stderr.
err = Console(stderr=True, soft_wrap=True)


IgluOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--iglu", help="Local Iglu repository (DIR/schemas/<vendor>/<name>/jsonschema/<version>); repeatable."
    ),
]
EnrichmentsOption = Annotated[
    Path | None, typer.Option("--enrichments", help="Directory of Snowplow enrichment JSON configs.")
]
ResolverOption = Annotated[Path | None, typer.Option("--resolver", help="Snowplow Iglu resolver-config JSON file.")]


def settings_from_options(
    config: Path | None,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    enrich: dict[str, Any] | None = None,
) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    collector = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    if collector:
        overrides["collector"] = collector
    enrich_overrides = {k: v for k, v in (enrich or {}).items() if v not in (None, [])}
    if enrich_overrides:
        overrides["enrich"] = enrich_overrides
    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def enrich_overrides(
    iglu: list[Path] | None, enrichments: Path | None, resolver: Path | None, workers: int | None = None
) -> dict[str, Any]:
    """The enrich settings that command-line options set (None: not given)."""
    return {
        "workers": workers,
        "iglu": [str(p) for p in iglu or []],
        "enrichments": str(enrichments) if enrichments else None,
        "resolver": str(resolver) if resolver else None,
    }


def check_enrich_config(settings: Settings) -> None:
    """Build the pipeline once in the parent so a bad enrichment config fails before anything starts."""
    from plowline.enrich.service import build_pipeline

    try:
        build_pipeline(settings)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None



@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
