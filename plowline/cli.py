"""The `plowline` command: one entry point for every part of the pipeline."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
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
models_app = typer.Typer(
    help="The analytics data models: derived.page_views, derived.sessions and derived.users.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: $PLOWLINE_CONFIG, then ./plowline.toml)."),
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [default: ./plowline-data].")]
PortOption = Annotated[int | None, typer.Option("--port", help="Collector port [default: 9090].")]
HostOption = Annotated[str | None, typer.Option("--host", help="Collector interface [default: 127.0.0.1].")]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Collector worker processes [default: 1].", min=1)]

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


def _enrich_overrides(
    iglu: list[Path] | None, enrichments: Path | None, resolver: Path | None, workers: int | None = None
) -> dict[str, Any]:
    """The enrich settings that command-line options set (None: not given)."""
    return {
        "workers": workers,
        "iglu": [str(p) for p in iglu or []],
        "enrichments": str(enrichments) if enrichments else None,
        "resolver": str(resolver) if resolver else None,
    }


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


def _check_web(settings: Settings, host: str) -> None:
    """Build the dashboard app once so a missing token (listening beyond loopback) fails before start."""
    from plowline.analytics.dashboard import create_dashboard_app

    try:
        create_dashboard_app(settings, host=host)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


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
    """Run the whole pipeline on this machine: collector, enrich and the loaders, on the file log."""
    from plowline.supervisor import ChildSpec, Supervisor, child_environment, plowline_command

    enrich = _enrich_overrides(iglu, enrichments, resolver, enrich_workers)
    settings = _settings(config, data_dir, host, port, workers, enrich)
    configure_logging(settings.log_level, settings.log_format)
    _check_enrich_config(settings)
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

    settings = _settings(config, data_dir, enrich=_enrich_overrides(iglu, enrichments, resolver, workers))
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
def load(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    loader: Annotated[
        list[str] | None, typer.Option("--loader", help="Loader to run (repeatable) [default: storage.loaders].")
    ] = None,
) -> None:
    """Load the enriched and bad streams into storage: files, parquet, duckdb, postgres."""
    import asyncio

    from plowline.load_service import check_loaders, serve_loaders

    settings = _settings(config, data_dir)
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
    _run_collector(_settings(config, data_dir, host, port, workers), dashboard)


@app.command("dashboard")
def dashboard_command(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port [default: 9091].")] = None,
) -> None:
    """Serve the read-only web dashboard (and the Micro API when micro.enabled) alone, over the warehouse."""
    import uvicorn

    from plowline.analytics.dashboard import create_dashboard_app

    settings = _settings(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    listen_host, listen_port = host or "127.0.0.1", 9091 if port is None else port
    try:
        web = create_dashboard_app(settings, host=listen_host)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"[bold green]plowline {__version__}[/] dashboard on http://{listen_host}:{listen_port}/dashboard/",
              highlight=False)
    uvicorn.run(web, host=listen_host, port=listen_port, log_level="warning", access_log=False,
                server_header=False, proxy_headers=False)


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        err.print(f"[bold red]{option}[/] must be an ISO 8601 time such as 2026-11-28T09:00:00Z, not {text!r}")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def replay(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    since: Annotated[str | None, typer.Option("--since", help="Collector time from (ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Collector time until, exclusive (ISO 8601).")] = None,
    iglu: IgluOption = None,
    enrichments: EnrichmentsOption = None,
    resolver: ResolverOption = None,
) -> None:
    """Re-enrich the raw archive for a time range into the enriched and bad streams (loaders dedupe)."""
    import asyncio

    from plowline.replay import enrich_into_streams, raw_archive_records

    settings = _settings(config, data_dir, enrich=_enrich_overrides(iglu, enrichments, resolver))
    configure_logging(settings.log_level, settings.log_format)
    _check_enrich_config(settings)
    low, high = _when(since, "--since"), _when(until, "--until")
    total = sum(1 for _ in raw_archive_records(settings.raw_stream_url(), low, high))
    records = raw_archive_records(settings.raw_stream_url(), low, high)
    good, bad = asyncio.run(enrich_into_streams(settings, records, total, "replaying raw archive"))
    err.print(f"replayed {total} raw records: {good} good events, {bad} bad rows", highlight=False)


@app.command()
def recover(
    paths: Annotated[list[Path], typer.Argument(help="Bad-row files (JSON lines, .gz too) or directories of them.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    failure_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only bad rows of this type (repeatable).")
    ] = None,
    iglu: IgluOption = None,
    enrichments: EnrichmentsOption = None,
    resolver: ResolverOption = None,
) -> None:
    """Re-enrich the inputs kept in bad rows (e.g. after adding a missing schema) into the streams."""
    import asyncio

    from plowline.replay import Unrecoverable, enrich_into_streams, read_bad_rows, recover_record

    settings = _settings(config, data_dir, enrich=_enrich_overrides(iglu, enrichments, resolver))
    configure_logging(settings.log_level, settings.log_format)
    _check_enrich_config(settings)
    records: list[bytes] = []
    skipped: dict[str, int] = {}
    for row in read_bad_rows(paths):
        schema = str(row.get("schema", ""))
        kind = schema.split("/")[1] if schema.count("/") >= 3 else "?"
        rebuilt = (
            Unrecoverable(schema, f"type {kind} not chosen by --type")
            if failure_type and kind not in failure_type
            else recover_record(row)
        )
        if isinstance(rebuilt, Unrecoverable):
            skipped[rebuilt.reason] = skipped.get(rebuilt.reason, 0) + 1
        else:
            records.append(rebuilt)
    good, bad = asyncio.run(enrich_into_streams(settings, records, len(records), "recovering bad rows"))
    err.print(f"recovered {len(records)} inputs: {good} good events, {bad} still bad", highlight=False)
    for reason, count in skipped.items():
        err.print(f"skipped {count}: {reason}", highlight=False)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement (SELECT, WITH ... SELECT or EXPLAIN).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="Output: table, csv, json or parquet.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file instead of stdout.")
    ] = None,
) -> None:
    """Query the warehouse (DuckDB in the data dir), also while `plowline up` is loading into it."""
    import pyarrow.parquet as pq

    from plowline.analytics.query import FORMATS, QueryError, format_result, query_arrow

    if output_format not in FORMATS:
        err.print(f"[bold red]--format[/] must be one of {', '.join(FORMATS)}, not {output_format!r}")
        raise typer.Exit(2)
    settings = _settings(config, data_dir)
    try:
        table = query_arrow(settings, sql)
    except QueryError as exc:
        err.print(f"[bold red]query failed[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if output_format == "parquet":
        # Written from the Arrow result itself, so every column keeps its warehouse type.
        if output is None and sys.stdout.isatty():
            err.print("[bold red]--format parquet[/] writes binary: give --output FILE or redirect stdout")
            raise typer.Exit(2)
        pq.write_table(table, str(output) if output else sys.stdout.buffer)
        return
    columns = list(table.column_names)
    rows = list(zip(*(column.to_pylist() for column in table.columns), strict=True)) if columns else []
    text = format_result(columns, rows, output_format)
    assert isinstance(text, str)
    if output is not None:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@models_app.command(
    "run",
    help=(
        "Build or update derived.page_views, derived.sessions and derived.users from atomic.events. "
        "Incremental: a run rebuilds only the sessions (and their users) with events loaded since the last run "
        "(less models.lookback_window_s, for late commits), in one transaction, so running it twice changes "
        "nothing. On DuckDB it works while `plowline up` holds the warehouse too."
    ),
)
def models_run(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="duckdb or postgres \\[default: models.target, auto: the loader in use]."),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Drop the derived tables and rebuild them from every event.")
    ] = False,
    every: Annotated[
        float | None,
        typer.Option("--every", help="Keep running: once every this many seconds, until stopped.", min=0.1),
    ] = None,
) -> None:
    import time

    from plowline.analytics.runner import ModelsError, run_models
    from plowline.observability import get_logger

    if target is not None and target not in ("duckdb", "postgres"):
        err.print(f"[bold red]--target[/] must be duckdb or postgres, not {target!r}", highlight=False)
        raise typer.Exit(2)
    settings = _settings(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("models")
    while True:
        try:
            result = run_models(settings, target=target, full_refresh=full_refresh)
        except ModelsError as exc:
            if every is None:
                err.print(f"[bold red]models run failed[/] {exc}", highlight=False)
                raise typer.Exit(1) from None
            log.warning("models run failed; trying again later", error=str(exc), in_s=every)
        else:
            if every is None:
                table = Table("model", "rows", "rebuilt this run",
                              title=f"derived.* on {result.via} in {result.seconds:.2f} s")
                for count in result.counts:
                    table.add_row(f"derived.{count.model}", str(count.rows), str(count.rebuilt))
                Console().print(table)
                return
            log.info("models run", via=result.via, seconds=round(result.seconds, 3),
                     **{count.model: count.rows for count in result.counts},
                     sessions_rebuilt=next((c.rebuilt for c in result.counts if c.model == "sessions"), 0))
        full_refresh = False  # with --every, only the first run is a full refresh
        time.sleep(every)


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


CollectorUrlOption = Annotated[str, typer.Option("--collector", help="Collector base URL.")]


@app.command()
def send(
    collector_url: CollectorUrlOption = "http://127.0.0.1:9090",
    page_view: Annotated[
        list[str] | None, typer.Option("--page-view", metavar="URL", help="A page view of URL (repeatable).")
    ] = None,
    struct: Annotated[
        tuple[str, str] | None, typer.Option("--struct", metavar="CATEGORY ACTION", help="A structured event.")
    ] = None,
    self_describing: Annotated[
        tuple[str, str] | None,
        typer.Option("--self-describing", metavar="SCHEMA JSON", help="A self-describing event (iglu: URI, data)."),
    ] = None,
    count: Annotated[int, typer.Option("--count", help="Send each event this many times.", min=1)] = 1,
    method: Annotated[str, typer.Option("--method", help="post (tp2 batches) or get (/i).")] = "post",
    app_id: Annotated[str, typer.Option("--app-id", help="The events' app_id.")] = "plowline-send",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for acknowledgement.")] = 30.0,
) -> None:
    """Send test events with Plowline's Python tracker; print how many the collector acknowledged."""
    import json

    from plowline.trackers.python import Emitter, Event, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent
    from plowline.trackers.python import Subject as TrackerSubject
    from plowline.trackers.python import Tracker as PythonTracker

    if method not in ("post", "get"):
        err.print(f"[bold red]--method[/] must be post or get, not {method!r}", highlight=False)
        raise typer.Exit(2)
    events: list[Event] = [PageView(page_url=url) for url in page_view or []]
    if struct is not None:
        events.append(StructuredEvent(category=struct[0], action=struct[1]))
    if self_describing is not None:
        try:
            events.append(SelfDescribing(event=SelfDescribingJson(self_describing[0], json.loads(self_describing[1]))))
        except ValueError as exc:
            err.print(f"[bold red]--self-describing[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
    if not events:
        err.print("give at least one of --page-view URL, --struct CATEGORY ACTION, --self-describing SCHEMA JSON")
        raise typer.Exit(2)
    try:
        emitter = Emitter(collector_url, method="get" if method == "get" else "post", batch_size=50)
    except ValueError as exc:
        err.print(f"[bold red]--collector[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    tracker = PythonTracker(emitter, namespace="plowline-send", app_id=app_id, subject=TrackerSubject(platform="srv"))
    for _ in range(count):
        for event in events:
            tracker.track(event)
    total = count * len(events)
    emitter.close(timeout)
    typer.echo(f"{emitter.acknowledged} of {total} events acknowledged by {collector_url}")
    if emitter.rejected:
        err.print(f"{emitter.rejected} refused by the collector (see the log)", highlight=False)
    if emitter.acknowledged != total:
        raise typer.Exit(1)


@app.command()
def pixel(
    page_url: Annotated[str, typer.Option("--page-url", help="The page (or e-mail) URL the event is about.")],
    collector_url: CollectorUrlOption = "http://127.0.0.1:9090",
    page_title: Annotated[str | None, typer.Option("--page-title", help="The page title.")] = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help="The app_id.")] = None,
    struct: Annotated[
        str | None,
        typer.Option("--struct", metavar="CATEGORY,ACTION[,LABEL[,PROPERTY[,VALUE]]]",
                     help="A structured event instead of a page view."),
    ] = None,
    tag: Annotated[bool, typer.Option("--tag", help="Print an <img> tag instead of the bare URL.")] = False,
    event_id: Annotated[
        bool, typer.Option("--event-id", help="Bake a fresh eid in: every fetch is then the same event.")
    ] = False,
    timestamp: Annotated[bool, typer.Option("--timestamp", help="Bake the current time in as dtm.")] = False,
) -> None:
    """Print a tracking-pixel URL (tp1 GET /i) or <img> tag for e-mails and pages without JavaScript.

    Without --event-id, each fetch is its own event: enrich derives its event_id from the raw record.
    """
    import time
    import uuid

    from plowline.trackers.pixel import StructFields, img_tag, pixel_url

    try:
        url = pixel_url(
            collector_url, page_url, page_title=page_title, app_id=app_id,
            struct=StructFields.parse(struct) if struct is not None else None,
            event_id=str(uuid.uuid4()) if event_id else None,
            timestamp_ms=int(time.time() * 1000) if timestamp else None,
        )
    except ValueError as exc:
        err.print(f"[bold red]invalid pixel[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(img_tag(url) if tag else url)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()
