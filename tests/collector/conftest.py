"""In-process collector fixtures: the ASGI app over recording sinks, driven by httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import httpx
import pytest

from plowline.collector.app import CollectorApp
from plowline.collector.metrics import collector_metrics
from plowline.config import CollectorSettings
from plowline.payload import CollectorPayload
from plowline.streams.memory import RecordingSink


class Harness:
    """A collector app with recording sinks, and helpers to read back what it stored."""

    def __init__(self, settings: CollectorSettings, max_record_bytes: int = 1_000_000) -> None:
        self.raw = RecordingSink(max_record_bytes=max_record_bytes)
        self.bad = RecordingSink()
        self.app = CollectorApp(settings, self.raw, self.bad, collector_metrics(), "plowline-test-memory")
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("203.0.113.7", 51000)),
            base_url="http://collector.test",
            follow_redirects=False,
        )

    async def asgi(
        self,
        method: str,
        path: str,
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send exact bytes to the app, bypassing any client-side URL normalisation."""
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": headers if headers is not None else [(b"host", b"collector.test")],
            "client": ("127.0.0.1", 50000),
        }
        await self.app(scope, receive, send)
        start, body_message = sent[0], sent[1]
        return start["status"], dict(start["headers"]), body_message["body"]

    def records(self) -> list[CollectorPayload]:
        return [CollectorPayload.from_thrift(record) for record in self.raw.records]

    def bad_rows(self) -> list[bytes]:
        return list(self.bad.records)


HarnessFactory = Callable[..., Harness]


@pytest.fixture
async def make_collector() -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    def build(max_record_bytes: int = 1_000_000, **settings: Any) -> Harness:
        harness = Harness(CollectorSettings(**settings), max_record_bytes)
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        await harness.client.aclose()


@pytest.fixture
async def collector_app(make_collector: HarnessFactory) -> Harness:
    return make_collector()
