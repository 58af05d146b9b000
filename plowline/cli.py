"""The `plowline` command: one entry point for every part of the pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from plowline import __version__
from plowline.config import Settings, load_config, settings_to_json
from plowline.errors import ConfigError
from plowline.observability import configure_logging

app = typer.Typer(
    name="plowline",
    help="Plowline: a Snowplow-compatible behavioural-event pipeline (collector, enrich, storage, analytics).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $PLOWLINE_CONFIG, then ./plowline.toml)."),
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory [default: ./plowline-data].")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Collector port [default: 9090].")]
HostOption = Annotated[str | None, typer.Option("--host", help="Collector interface [default: 127.0.0.1].")]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", help="Collector worker processes [default: 1].", min=1)
]

err = Console(stderr=True)


def _settings(
    config: Path | None,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    collector = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    if collector:
        overrides["collector"] = collector
    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _run_collector(settings: Settings) -> None:
    from plowline.collector.server import serve

    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    serve(settings)


@app.command()
def up(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    port: PortOption = None,
    host: HostOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the embedded pipeline on this machine (for now: the collector writing to DATA_DIR/streams)."""
    settings = _settings(config, data_dir, host, port, workers)
    err.print(
        f"[bold green]plowline {__version__}[/] collector on "
        f"http://{settings.collector.host}:{settings.collector.port}  data in {settings.data_dir.resolve()}",
        highlight=False,
    )
    _run_collector(settings)


@app.command()
def collector(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    port: PortOption = None,
    host: HostOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the HTTP collector alone, writing raw records to the configured raw stream."""
    _run_collector(_settings(config, data_dir, host, port, workers))


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (defaults, TOML and PLOWLINE_* overrides applied) as JSON."""
    sys.stdout.write(settings_to_json(_settings(config)).decode() + "\n")


@config_app.command("docs")
def config_docs() -> None:
    """List every configuration key with its type, default and description."""
    table = Table("key", "type", "default", "description", title="plowline.toml keys")
    for key, annotation, default, description in _walk_fields(Settings, ""):
        table.add_row(key, annotation, default, description)
    Console().print(table)


def _walk_fields(model: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    from pydantic import BaseModel

    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_walk_fields(annotation, key + "."))
            continue
        default = field.get_default(call_default_factory=True)
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        rows.append((key, type_name, repr(default), field.description or ""))
    return rows


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()
