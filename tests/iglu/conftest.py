"""Iglu fixtures: the Iglu Central snapshot, tiny local repositories, and a real static HTTP repository server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from plowline.schema_key import SchemaKey

IGLU_CENTRAL = Path("/work/shared/iglu-central")
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"


def write_schema(root: Path, uri: str, body: dict[str, Any], *, self_uri: str | None = None) -> Path:
    """Write a self-describing schema into the static repository at `root` (`root/schemas/...`)."""
    key = SchemaKey.parse(uri)
    described = SchemaKey.parse(self_uri or uri)
    schema = {
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": described.vendor, "name": described.name, "format": described.format,
                 "version": str(described.version)},
        **body,
    }
    file = root / "schemas" / key.path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(schema))
    return file


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StaticServer:
    """A static Iglu repository over real HTTP on loopback, counting requests.

    Paths under `/api/` are served like Iglu Server: `/api/schemas/<v>/<n>/jsonschema/<model>` lists URIs.
    """

    root: Path
    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    status: int | None = None  # when set, every request answers this status

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append((self.path, {name.lower(): value for name, value in self.headers.items()}))
        if state.status is not None:
            self._send(state.status, b"{}")
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/"):
            path = path[len("/api"):]
            parts = path.strip("/").split("/")
            if len(parts) == 5 and parts[4].isdigit():
                folder = state.root / "schemas" / parts[1] / parts[2] / "jsonschema"
                listed = sorted(
                    f"iglu:{parts[1]}/{parts[2]}/jsonschema/{entry.name}"
                    for entry in (folder.iterdir() if folder.is_dir() else [])
                    if entry.name.split("-")[0] == parts[4]
                )
                self._send(200 if listed else 404, json.dumps(listed).encode())
                return
        file = state.root / path.lstrip("/")
        if file.is_file():
            self._send(200, file.read_bytes())
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    state: StaticServer
    daemon_threads = True


def _serve(root: Path) -> Iterator[StaticServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    state = StaticServer(root, url=f"http://127.0.0.1:{server.server_address[1]}")
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def central_server() -> Iterator[StaticServer]:
    """The Iglu Central snapshot served over HTTP from a free loopback port."""
    yield from _serve(IGLU_CENTRAL)


@pytest.fixture
def acme_repo(tmp_path: Path) -> Path:
    """A tiny static repository: com.acme/event 1-0-0 (superseded by 1-0-1), 1-0-1, and com.acme/ping 1-0-0."""
    root = tmp_path / "acme"
    strict: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}},
              "required": ["name"], "additionalProperties": False}
    write_schema(root, "iglu:com.acme/event/jsonschema/1-0-0", {**strict, "$supersededBy": "1-0-1"})
    widened = {**strict, "properties": {**strict["properties"], "count": {"type": "integer"}}}
    write_schema(root, "iglu:com.acme/event/jsonschema/1-0-1", widened)
    write_schema(root, "iglu:com.acme/ping/jsonschema/1-0-0", {"type": "object"})
    return root


@pytest.fixture
def acme_server(acme_repo: Path) -> Iterator[StaticServer]:
    """`acme_repo` served over HTTP."""
    yield from _serve(acme_repo)


@pytest.fixture
def dead_url() -> str:
    """An http URL on loopback where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
