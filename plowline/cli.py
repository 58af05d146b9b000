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
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [default: ./plowline-data].")]
PortOption = Annotated[int | None, typer.Option("--port", help="Collector port [default: 9090].")]
HostOption = Annotated[str | None, typer.Option("--host", help="Collector interface [default: 127.0.0.1].")]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Collector worker processes [default: 1].", min=1)]

err = Console(stderr=True)


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


def _settings(
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
    enrich_workers: Annotated[
        int | None, typer.Option("--enrich-workers", help="Enrich worker processes [default: cores].", min=1)
    ] = None,
    iglu: IgluOption = None,
    enrichments: EnrichmentsOption = None,
    resolver: ResolverOption = None,
) -> None:
    """Run the whole pipeline on this machine: collector, enrich and the enriched archive, on the file log."""
    from plowline.supervisor import ChildSpec, Supervisor, child_environment, plowline_command

    enrich = {
        "workers": enrich_workers,
        "iglu": [str(p) for p in iglu or []],
        "enrichments": str(enrichments) if enrichments else None,
        "resolver": str(resolver) if resolver else None,
    }
    settings = _settings(config, data_dir, host, port, workers, enrich)
    configure_logging(settings.log_level, settings.log_format)
    _check_enrich_config(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    err.print(
        f"[bold green]plowline {__version__}[/] collector on "
        f"http://{settings.collector.host}:{settings.collector.port}  data in {settings.data_dir.resolve()}",
        highlight=False,
    )
    members = settings.enrich.workers
    if settings.raw_stream_url().startswith("file:") and members > settings.collector.workers:
        # Each collector worker writes one partition of the file log and a partition has one reader
        # per group: more enrich workers than partitions would sit idle.
        members = settings.collector.workers
        err.print(f"enrich workers: {members} (one per collector worker; raise --workers to scale both)")
    specs = [ChildSpec("collector", plowline_command("collector"))]
    specs += [
        ChildSpec(f"enrich-{i}", plowline_command("enrich", "--member", str(i), "--members", str(members)))
        for i in range(members)
    ]
    if settings.enrich.archive:
        specs.append(ChildSpec("archive", plowline_command("load")))
    code = Supervisor(specs, child_environment(settings_to_json(settings))).run()
    raise typer.Exit(code)


def _check_enrich_config(settings: Settings) -> None:
    """Build the pipeline once in the parent so a bad enrichment config fails before anything starts."""
    from plowline.enrich.service import build_pipeline

    try:
        build_pipeline(settings)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def enrich(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes [default: cores].", min=1)] = None,
    iglu: IgluOption = None,
    enrichments: EnrichmentsOption = None,
    resolver: ResolverOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Enrich records from --input and print them, then exit.")
    ] = False,
    input_file: Annotated[
        str, typer.Option("--input", help="With --once: file of base64 raw records, one per line ('-' = stdin).")
    ] = "-",
    output_format: Annotated[str, typer.Option("--format", help="With --once: tsv or json.")] = "tsv",
    member: Annotated[int | None, typer.Option("--member", hidden=True)] = None,
    members: Annotated[int, typer.Option("--members", hidden=True)] = 1,
) -> None:
    """Enrich the raw stream into enriched events and bad rows; or, with --once, records from a file or stdin."""
    import asyncio

    from plowline.enrich import service

    overrides = {
        "workers": workers,
        "iglu": [str(p) for p in iglu or []],
        "enrichments": str(enrichments) if enrichments else None,
        "resolver": str(resolver) if resolver else None,
    }
    settings = _settings(config, data_dir, enrich=overrides)
    configure_logging(settings.log_level, settings.log_format)
    if once:
        if output_format not in ("tsv", "json"):
            err.print("[bold red]--format[/] must be tsv or json")
            raise typer.Exit(2)
        _check_enrich_config(settings)
        stream = sys.stdin if input_file == "-" else open(input_file, encoding="utf-8")  # noqa: SIM115
        with stream:
            good, bad = service.run_once(
                settings, service.read_raw_lines(stream), output_format, sys.stdout, sys.stderr
            )
        err.print(f"{good} good, {bad} bad", highlight=False)
        return
    if member is None and settings.enrich.workers > 1:
        from plowline.supervisor import ChildSpec, Supervisor, child_environment, plowline_command

        _check_enrich_config(settings)
        count = settings.enrich.workers
        specs = [
            ChildSpec(f"enrich-{i}", plowline_command("enrich", "--member", str(i), "--members", str(count)))
            for i in range(count)
        ]
        raise typer.Exit(Supervisor(specs, child_environment(settings_to_json(settings))).run())
    try:
        asyncio.run(service.serve_member(settings, member or 0, members))
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def load(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Load the enriched and bad streams into the enriched archive (TSV and JSON files under DATA_DIR)."""
    import asyncio

    from plowline.load_service import serve_archive

    settings = _settings(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve_archive(settings))


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
