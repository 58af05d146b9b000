"""LocalAssetStore: local paths, file:// URIs, built-in files, one-time http downloads (loopback), refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plowline.enrich.assets import BUILTIN_URI, LocalAssetStore, asset_uri
from plowline.enrich.errors import EnrichmentConfigError


class Served:
    """A loopback HTTP server that counts requests per path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.hits: dict[str, int] = {}
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.hits[self.path] = served.hits.get(self.path, 0) + 1
                body = served.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def http() -> Iterator[Served]:
    served = Served({"/maxmind/GeoLite2-ASN.mmdb": b"database bytes"})
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join()


def test_location_is_uri_slash_database() -> None:
    assert asset_uri("http://x/maxmind", "a.mmdb") == "http://x/maxmind/a.mmdb"
    assert asset_uri("http://x/maxmind/", "a.mmdb") == "http://x/maxmind/a.mmdb"


@pytest.mark.parametrize("uri", ["dbs", "file:dbs", "file:./dbs", "ABSOLUTE", "file://ABSOLUTE"],
                         ids=["relative path", "relative file uri", "dotted relative file uri", "absolute path",
                              "absolute file uri"])
def test_local_files(tmp_path: Path, uri: str) -> None:
    (tmp_path / "dbs").mkdir()
    (tmp_path / "dbs" / "a.mmdb").write_bytes(b"x")
    store = LocalAssetStore(tmp_path, tmp_path / "cache")
    resolved = store.path(uri.replace("ABSOLUTE", str(tmp_path / "dbs")), "a.mmdb")
    assert resolved.resolve() == (tmp_path / "dbs" / "a.mmdb").resolve()


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        LocalAssetStore(tmp_path, tmp_path).path("file:dbs", "a.mmdb")
    assert raised.value.key == "uri"
    assert "file:dbs/a.mmdb" in raised.value.problem


def test_builtin_referers(tmp_path: Path) -> None:
    path = LocalAssetStore(tmp_path, tmp_path).path(BUILTIN_URI, "referers.json")
    assert path.name == "referers.json" and path.is_file()


def test_download_once(tmp_path: Path, http: Served) -> None:
    store = LocalAssetStore(tmp_path, tmp_path / "cache")
    first = store.path(f"{http.url}/maxmind", "GeoLite2-ASN.mmdb")
    assert first.read_bytes() == b"database bytes"
    assert first.parent == tmp_path / "cache" and first.name.endswith("-GeoLite2-ASN.mmdb")
    again = LocalAssetStore(tmp_path, tmp_path / "cache").path(f"{http.url}/maxmind/", "GeoLite2-ASN.mmdb")
    assert again == first
    assert http.hits == {"/maxmind/GeoLite2-ASN.mmdb": 1}
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no partial files left


def test_download_not_found(tmp_path: Path, http: Served) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        LocalAssetStore(tmp_path, tmp_path / "cache").path(f"{http.url}/maxmind", "missing.mmdb")
    assert "HTTP 404" in raised.value.problem
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_unreachable(tmp_path: Path, http: Served) -> None:
    url = http.url
    http.server.shutdown()
    http.server.server_close()
    with pytest.raises(EnrichmentConfigError) as raised:
        LocalAssetStore(tmp_path, tmp_path / "cache").path(f"{url}/maxmind", "GeoLite2-ASN.mmdb")
    assert "download failed" in raised.value.problem


@pytest.mark.parametrize(("uri", "words"), [
    ("s3://bucket/maxmind", "s3:// assets are not supported yet"),
    ("gs://bucket/maxmind", "gs:// assets are not supported yet"),
    ("ftp://host/maxmind", "unknown URI scheme"),
    ("plowline://builtin", "Plowline ships no data file"),
])
def test_refused(tmp_path: Path, uri: str, words: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        LocalAssetStore(tmp_path, tmp_path).path(uri, "GeoLite2-ASN.mmdb")
    assert words in raised.value.problem
    assert raised.value.fix


@pytest.mark.parametrize("database", ["", "../secret", "a/b.mmdb", ".."])
def test_database_must_be_a_file_name(tmp_path: Path, database: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        LocalAssetStore(tmp_path, tmp_path).path("file:dbs", database)
    assert raised.value.key == "database"
