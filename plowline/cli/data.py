"""The commands over stored data: `query`, `models run`, `replay` and `recover`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plowline.cli.common import (
    ConfigOption,
    DataDirOption,
    EnrichmentsOption,
    IgluOption,
    ResolverOption,
    app,
    check_enrich_config,
    enrich_overrides,
    err,
    models_app,
    settings_from_options,
)
from plowline.config import Settings
from plowline.observability import configure_logging

# `models run --every`: how often to look for a warehouse that does not exist yet.
_WAREHOUSE_POLL_S = 5.0


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

    settings = settings_from_options(config, data_dir, enrich=enrich_overrides(iglu, enrichments, resolver))
    configure_logging(settings.log_level, settings.log_format)
    check_enrich_config(settings)
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

    settings = settings_from_options(config, data_dir, enrich=enrich_overrides(iglu, enrichments, resolver))
    configure_logging(settings.log_level, settings.log_format)
    check_enrich_config(settings)
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
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="duckdb, postgres, or auto: the warehouse storage.loaders fills (duckdb unless only postgres is).",
        ),
    ] = "auto",
) -> None:
    """Query the warehouse (DuckDB in the data dir, or PostgreSQL), also while `plowline up` is loading into it.

    The statement runs read-only: one SELECT, WITH … SELECT or EXPLAIN. On PostgreSQL (storage.postgres.dsn)
    it runs in a read-only transaction with storage.postgres.schema_name first on the search_path.
    """
    import pyarrow.parquet as pq

    from plowline.analytics.query import FORMATS, QueryError, format_result, query_warehouse

    if output_format not in FORMATS:
        err.print(f"[bold red]--format[/] must be one of {', '.join(FORMATS)}, not {output_format!r}")
        raise typer.Exit(2)
    settings = settings_from_options(config, data_dir)
    try:
        table = query_warehouse(settings, sql, target)
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
        typer.Option("--target", help="duckdb or postgres (default: models.target; auto: the loader in use)."),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Drop the derived tables and rebuild them from every event.")
    ] = False,
    every: Annotated[
        float | None,
        typer.Option("--every", help="Keep running: once every this many seconds, until stopped.", min=0.1),
    ] = None,
) -> None:
    from plowline.analytics.runner import ModelsError, run_models

    if target is not None and target not in ("duckdb", "postgres"):
        err.print(f"[bold red]--target[/] must be duckdb or postgres, not {target!r}", highlight=False)
        raise typer.Exit(2)
    settings = settings_from_options(config, data_dir)
    configure_logging(settings.log_level, settings.log_format)
    if every is not None:
        _run_models_every(settings, target, full_refresh, every)
        return
    try:
        result = run_models(settings, target=target, full_refresh=full_refresh)
    except ModelsError as exc:
        err.print(f"[bold red]models run failed[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    table = Table("model", "rows", "rebuilt this run", title=f"derived.* on {result.via} in {result.seconds:.2f} s")
    for count in result.counts:
        table.add_row(f"derived.{count.model}", str(count.rows), str(count.rebuilt))
    Console().print(table)


def _run_models_every(settings: Settings, target: str | None, full_refresh: bool, every: float) -> None:
    """`models run --every`: a run every `every` seconds until SIGTERM or Ctrl-C, which end it cleanly
    (a run cut short rolls back: each is one transaction). Only the first run may be a full refresh."""
    import signal
    import time
    from types import FrameType

    from plowline.analytics.runner import ModelsError, NoWarehouseYet, run_models
    from plowline.observability import get_logger

    log = get_logger("models")

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    waiting = False
    try:
        while True:
            try:
                result = run_models(settings, target=target, full_refresh=full_refresh)
            except NoWarehouseYet as exc:
                # Just after `plowline up` starts, before the loader has stored anything: not a failure,
                # and worth looking again soon rather than a whole interval later.
                if not waiting:
                    log.info("models will run once the warehouse exists", error=str(exc))
                    waiting = True
                time.sleep(min(every, _WAREHOUSE_POLL_S))
                continue
            except ModelsError as exc:
                log.warning("models run failed; trying again later", error=str(exc), in_s=every)
            else:
                log.info("models run", via=result.via, seconds=round(result.seconds, 3),
                         **{count.model: count.rows for count in result.counts},
                         sessions_rebuilt=next((c.rebuilt for c in result.counts if c.model == "sessions"), 0))
            full_refresh = False
            waiting = False
            time.sleep(every)
    except KeyboardInterrupt:
        log.info("models schedule stopped")
    except Exception:
        # A stop that lands while DuckDB runs a statement comes back as DuckDB's own error ("Query
        # interrupted"), not as KeyboardInterrupt. The run's transaction rolls back, and the stop
        # is the one asked for: `plowline up` stopping the schedule mid-run is not a failure.
        if not stopping:
            raise
        log.info("models schedule stopped during a run; that run rolled back")
    finally:
        signal.signal(signal.SIGTERM, previous)
