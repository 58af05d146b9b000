"""The commands that run the pipeline: `up` (everything, supervised), `collector`, `enrich`, `load`, `dashboard`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from starlette.types import ASGIApp

from plowline import __version__
from plowline.cli.common import (
    ConfigOption,
    DataDirOption,
    EnrichmentsOption,
    HostOption,
    IgluOption,
    PortOption,
    ResolverOption,
    WorkersOption,
    app,
    check_enrich_config,
    enrich_overrides,
    err,
    settings_from_options,
)
from plowline.config import Settings, settings_to_json
from plowline.errors import ConfigError
from plowline.observability import configure_logging


def _run_collector(settings: Settings, dashboard: bool = False) -> None:
    from plowline.collector.server import serve

    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not dashboard and settings.dashboard.enabled:
        settings = settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update={"enabled": False})})
    from plowline.web import FACTORY, serves_web

    if not serves_web(settings):
        serve(settings)
        return
    _check_web(settings, settings.collector.host)
    serve(settings, FACTORY)


def _dashboard_app(settings: Settings, host: str) -> ASGIApp:
    """The dashboard app for `host`; a bad dashboard config (no token beyond loopback) exits with 2."""
    from plowline.analytics.dashboard import create_dashboard_app

    try:
        return create_dashboard_app(settings, host=host)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _check_web(settings: Settings, host: str) -> None:
    """Build the dashboard app once in the parent so a bad dashboard config fails before anything starts."""
    _dashboard_app(settings, host)


@app.command()
def up(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    port: PortOption = None,
    host: HostOption = None,
    workers: WorkersOption = None,
    enrich_workers: Annotated[
        int | None, typer.Option("--enrich-workers", help="Enrich worker processes (default: cores).", min=1)
    ] = None,
    iglu: IgluOption = None,
    enrichments: EnrichmentsOption = None,
    resolver: ResolverOption = None,
) -> None:
    """Run the whole pipeline on this machine: collector, enrich and the loaders, on the file log."""
    from plowline.supervisor import ChildSpec, Supervisor, child_environment, plowline_command

    enrich = enrich_overrides(iglu, enrichments, resolver, enrich_workers)
    settings = settings_from_options(config, data_dir, host, port, workers, enrich)
    configure_logging(settings.log_level, settings.log_format)
    check_enrich_config(settings)
    if settings.dashboard.enabled or settings.micro.enabled:
        _check_web(settings, settings.collector.host)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    err.print(
        f"[bold green]plowline {__version__}[/] collector on "
        f"http://{settings.collector.host}:{settings.collector.port}  data in {settings.data_dir.resolve()}",
        highlight=False,
    )
    if settings.dashboard.enabled:
        err.print(f"dashboard on http://{settings.collector.host}:{settings.collector.port}/dashboard/",
                  highlight=False)
    if (settings.dashboard.enabled or settings.micro.enabled) and "duckdb" not in settings.storage.loaders:
        from plowline.analytics.dashboard.warehouse import without_duckdb_loader

        err.print(f"[yellow]note[/] {without_duckdb_loader(settings)}", highlight=False)
    members = settings.enrich.workers
    if settings.raw_stream_url().startswith("file:") and members > settings.collector.workers:
        # Each collector worker writes one partition of the file log and a partition has one reader
        # per group: more enrich workers than partitions would sit idle.
        members = settings.collector.workers
        err.print(f"enrich workers: {members} (one per collector worker; raise --workers to scale both)")
    collector_args = ("--dashboard",) if settings.dashboard.enabled else ()
    specs = [ChildSpec("collector", plowline_command("collector", *collector_args))]
    specs += [
        ChildSpec(f"enrich-{i}", plowline_command("enrich", "--member", str(i), "--members", str(members)))
        for i in range(members)
    ]
    loaders = settings.storage.loaders
    specs += [ChildSpec(f"load-{name}", plowline_command("load", "--loader", name)) for name in loaders]
    if settings.models.every_s > 0 and ("duckdb" in loaders or "postgres" in loaders):
        # The models run on a schedule in a child of their own; on DuckDB through the loader's socket.
        specs.append(ChildSpec("models", plowline_command("models", "run", "--every", f"{settings.models.every_s:g}")))
        err.print(f"models: derived.page_views, sessions and users updated every {settings.models.every_s:g} s",
                  highlight=False)
    from plowline.status import PipelineStatus, StatusDisplay

    with StatusDisplay(PipelineStatus.from_settings(settings), err) as display:
        code = Supervisor(specs, child_environment(settings_to_json(settings))).run(display.tick)
    raise typer.Exit(code)



@app.command()
def enrich(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (default: cores).", min=1)] = None,
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

    settings = settings_from_options(config, data_dir, enrich=enrich_overrides(iglu, enrichments, resolver, workers))
    configure_logging(settings.log_level, settings.log_format)
    if once:
        if output_format not in ("tsv", "json"):
            err.print("[bold red]--format[/] must be tsv or json")
            raise typer.Exit(2)
        check_enrich_config(settings)
        stream = sys.stdin if input_file == "-" else open(input_file, encoding="utf-8")  # noqa: SIM115
        with stream:
            good, bad = service.run_once(
                settings, service.read_raw_lines(stream), output_format, sys.stdout, sys.stderr
            )
        err.print(f"{good} good, {bad} bad", highlight=False)
        return
    if member is None and settings.enrich.workers > 1:
        from plowline.supervisor import ChildSpec, Supervisor, child_environment, plowline_command

        check_enrich_config(settings)
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
def load(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    loader: Annotated[
        list[str] | None, typer.Option("--loader", help="Loader to run; repeatable (default: storage.loaders).")
    ] = None,
) -> None:
    """Load the enriched and bad streams into storage: files, parquet, duckdb, postgres."""
    import asyncio

    from plowline.load_service import check_loaders, serve_loaders

    settings = settings_from_options(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_loaders(loader or settings.storage.loaders)
        asyncio.run(serve_loaders(settings, loader))
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def collector(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    port: PortOption = None,
    host: HostOption = None,
    workers: WorkersOption = None,
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="Also serve /dashboard on this port (plowline up passes it).")
    ] = False,
) -> None:
    """Run the HTTP collector alone, writing raw records to the configured raw stream."""
    _run_collector(settings_from_options(config, data_dir, host, port, workers), dashboard)


@app.command("dashboard")
def dashboard_command(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface (default: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default: 9091).")] = None,
) -> None:
    """Serve the read-only web dashboard (and the Micro API when micro.enabled) alone, over the warehouse."""
    import uvicorn

    settings = settings_from_options(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    listen_host, listen_port = host or "127.0.0.1", 9091 if port is None else port
    web = _dashboard_app(settings, listen_host)
    err.print(f"[bold green]plowline {__version__}[/] dashboard on http://{listen_host}:{listen_port}/dashboard/",
              highlight=False)
    uvicorn.run(web, host=listen_host, port=listen_port, log_level="warning", access_log=False,
                server_header=False, proxy_headers=False)
