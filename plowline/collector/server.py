"""Running the collector: uvicorn worker processes, each opening its own raw and bad sinks.

The parent process passes the effective settings to each worker through an environment
variable (workers are started fresh, not forked with state), and sets up the shared directory in
which prometheus_client aggregates metrics across workers.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plowline import __version__
from plowline.collector.app import CollectorApp
from plowline.collector.metrics import collector_metrics
from plowline.collector.request import Receive
from plowline.collector.responses import Send
from plowline.config import Settings, settings_from_json, settings_to_json
from plowline.observability import MULTIPROC_ENV, configure_logging, get_logger
from plowline.streams import Sink, open_sink

SETTINGS_ENV = "PLOWLINE_COLLECTOR_SETTINGS_JSON"
#: How uvicorn serves the collector (bench/bare_asgi.py serves its do-nothing app the same way).
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "lifespan": "on",
    "access_log": False,
    "log_level": "warning",
    "server_header": False,
    "proxy_headers": False,  # the collector reads X-Forwarded-For itself, as Snowplow's does
    "date_header": False,
    "timeout_keep_alive": 60,
    "timeout_graceful_shutdown": 10,
}
log = get_logger("collector")


class CollectorService:
    """ASGI entry point with lifespan: opens the sinks at start-up, flushes and closes them at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: CollectorApp | None = None
        self._sinks: list[Sink] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None:  # a server that does not run lifespan
            await self.start()
        assert self.app is not None
        await self.app(scope, receive, send)

    async def start(self) -> None:
        raw_url, bad_url = self.settings.raw_stream_url(), self.settings.bad_stream_url()
        raw_sink = open_sink(raw_url)
        bad_sink = open_sink(bad_url)
        self._sinks = [raw_sink, bad_sink]
        name = f"plowline-{__version__}-{urlsplit(raw_url).scheme}"
        self.app = CollectorApp(self.settings.collector, raw_sink, bad_sink, collector_metrics(), name)
        # Everything built so far lives for the whole process: moving it out of the collector's
        # generations, and collecting less often, removes full-heap pauses that found nothing to
        # free (measured: +19% requests/s, p99 52 ms -> 14 ms at half rate; see BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        log.info("collector worker started", pid=os.getpid(), raw=raw_url, bad=bad_url)

    async def stop(self) -> None:
        for sink in self._sinks:
            await sink.close()
        self._sinks = []
        log.info("collector worker stopped", pid=os.getpid())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:  # report start-up failure to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> CollectorService:
    """uvicorn factory used in every worker process; settings come from the parent."""
    settings = settings_from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    return CollectorService(settings)


def serve(settings: Settings, factory: str = "plowline.collector.server:create_app") -> None:
    """Run the collector in the foreground until SIGINT/SIGTERM; sinks are flushed before exit.

    `factory` is the uvicorn app factory each worker calls (another module may wrap the collector,
    as plowline/web.py does to serve the dashboard on the same port)."""
    import uvicorn

    collector = settings.collector
    metrics_dir = Path(tempfile.mkdtemp(prefix="plowline-metrics-"))
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    os.environ[SETTINGS_ENV] = settings_to_json(settings).decode()
    log.info(
        "collector starting",
        host=collector.host,
        port=collector.port,
        workers=collector.workers,
        raw=settings.raw_stream_url(),
    )
    try:
        uvicorn.run(
            factory,
            factory=True,
            host=collector.host,
            port=collector.port,
            workers=collector.workers,
            **UVICORN_OPTIONS,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
