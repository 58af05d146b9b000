"""Running loaders: each configured loader consumes the enriched and bad streams as its own group."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

from plowline.config import Settings
from plowline.errors import ConfigError, UnknownComponent
from plowline.observability import get_logger
from plowline.storage import LOADERS, Kind, Loader, open_loader
from plowline.storage.loader import run_loader
from plowline.streams import Source, open_source

log = get_logger("load")


def check_loaders(names: Sequence[str]) -> None:
    """Fail fast, naming the key, on a loader name nobody knows."""
    for name in names:
        try:
            LOADERS.get(name)
        except UnknownComponent as exc:
            raise ConfigError("storage.loaders", str(exc), f"use some of: {', '.join(LOADERS.names())}") from None


async def serve_loaders(settings: Settings, names: Sequence[str] | None = None) -> None:
    """Run the loaders until SIGINT/SIGTERM. Each (loader, stream) pair is its own consumer group, so
    every loader sees every record and keeps its own position."""
    chosen = list(names or settings.storage.loaders)
    check_loaders(chosen)
    streams: dict[Kind, str] = {"enriched": settings.enriched_stream_url(), "bad": settings.bad_stream_url()}
    pairs: list[tuple[Source, Loader]] = []
    for name in chosen:
        for kind, url in streams.items():
            pairs.append((open_source(url, name), open_loader(name, settings, kind)))
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task[None]] = []

    def stop() -> None:
        closing.extend(loop.create_task(source.close()) for source, _ in pairs)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("loaders started", loaders=chosen)
    try:
        await asyncio.gather(*(run_loader(source, loader, settings.storage.batch_size) for source, loader in pairs))
    finally:
        for source, loader in pairs:
            await source.close()
            await loader.close()
        log.info("loaders stopped", loaders=chosen)
