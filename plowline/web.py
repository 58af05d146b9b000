"""The collector's port with the dashboard and the Micro API beside it: the composition `plowline up` serves.

The collector and analytics subsystems do not know each other; this top-level module joins them.
`create_app` is the uvicorn factory each collector worker runs when the dashboard or Micro is on:
requests under /dashboard (and /micro when micro.enabled) go to the read-only dashboard app, every
other request to the collector unchanged. The prefix test is one `str.startswith` per request, so
the collector's hot path keeps its speed. Lifespan events go to the collector, which opens and
flushes its sinks; the dashboard holds nothing that needs them.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Send

from plowline.analytics.dashboard import create_dashboard_app
from plowline.collector.server import SETTINGS_ENV, CollectorService
from plowline.config import Settings, settings_from_json
from plowline.observability import configure_logging

__all__ = ["FACTORY", "WebApp", "create_app", "serves_web", "web_prefixes"]

#: The uvicorn factory string for `plowline.collector.server.serve`.
FACTORY = "plowline.web:create_app"


def web_prefixes(settings: Settings) -> tuple[str, ...]:
    """The path prefixes the dashboard app answers on the collector's port."""
    prefixes: tuple[str, ...] = ()
    if settings.dashboard.enabled:
        prefixes += ("/dashboard",)
    if settings.micro.enabled:
        prefixes += ("/micro",)
    return prefixes


def serves_web(settings: Settings) -> bool:
    """Whether the collector's port should serve the dashboard or Micro (and so run `create_app`)."""
    return bool(web_prefixes(settings))


class WebApp:
    """Routes by path prefix: the dashboard app for `prefixes`, the collector for everything else."""

    def __init__(self, collector: CollectorService, web: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.collector = collector
        self.web = web
        self.prefixes = prefixes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.web(scope, receive, send)
            return
        await self.collector(scope, receive, send)


def build_web_app(settings: Settings) -> WebApp:
    """The collector and the dashboard for `settings`; raises ConfigError (e.g. no token beyond loopback)."""
    web = create_dashboard_app(settings, host=settings.collector.host)
    return WebApp(CollectorService(settings), web, web_prefixes(settings))


def create_app() -> WebApp:
    """uvicorn factory used in every collector worker process; settings come from the parent."""
    settings = settings_from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    return build_web_app(settings)
