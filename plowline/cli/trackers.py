"""The tracker commands: `send` (test events with the Python tracker) and `pixel` (a no-JavaScript tag)."""

from __future__ import annotations

from typing import Annotated

import typer

from plowline.cli.common import (
    app,
    err,
)

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
