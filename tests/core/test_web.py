"""plowline/web.py: which app answers which path on the collector's port, and the prefixes config chooses."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from plowline.collector.server import CollectorService
from plowline.config import load_config
from plowline.web import WebApp, serves_web, web_prefixes


class Recorder:
    """An ASGI app that notes the paths (or scope types) it was given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.seen.append(scope.get("path", scope["type"]))


@pytest.mark.parametrize(
    ("dashboard", "micro", "prefixes"),
    [(True, False, ("/dashboard",)), (True, True, ("/dashboard", "/micro")), (False, True, ("/micro",)),
     (False, False, ())],
)
def test_prefixes_follow_config(dashboard: bool, micro: bool, prefixes: tuple[str, ...]) -> None:
    settings = load_config(overrides={"dashboard": {"enabled": dashboard}, "micro": {"enabled": micro}})
    assert web_prefixes(settings) == prefixes
    assert serves_web(settings) is bool(prefixes)


async def test_routes_by_prefix() -> None:
    collector, web = Recorder(), Recorder()
    app = WebApp(collector, web, ("/dashboard",))  # type: ignore[arg-type]
    for path in ("/dashboard", "/dashboard/api/summary", "/com.snowplowanalytics.snowplow/tp2", "/i", "/health",
                 "/micro/all"):
        await app({"type": "http", "path": path}, None, None)  # type: ignore[arg-type]
    await app({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert web.seen == ["/dashboard", "/dashboard/api/summary"]
    assert collector.seen == ["/com.snowplowanalytics.snowplow/tp2", "/i", "/health", "/micro/all", "lifespan"]


def test_collector_service_is_what_it_wraps() -> None:
    from plowline.web import build_web_app

    app = build_web_app(load_config(overrides={"micro": {"enabled": True}}))
    assert isinstance(app.collector, CollectorService) and app.prefixes == ("/dashboard", "/micro")
