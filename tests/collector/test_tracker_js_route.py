"""The collector serves plowline.js at /plowline.js: the packaged minified build, cache headers, ETag
revalidation, gzip."""

from __future__ import annotations

import gzip
import re
from importlib import resources
from pathlib import Path

import pytest

from plowline.collector.tracker_script import load_tracker_script
from plowline.config import TrackerScriptSettings
from plowline.errors import ConfigError
from tests.collector.conftest import Harness, HarnessFactory

PACKAGED = resources.files("plowline").joinpath("trackers/js/plowline.min.js").read_bytes()
SOURCE = resources.files("plowline").joinpath("trackers/js/plowline.js").read_bytes()


async def test_serves_the_packaged_script_with_cache_headers(collector_app: Harness) -> None:
    response = await collector_app.client.get("/plowline.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == PACKAGED
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    # The served build says which version it is, the source's, and that version is what it sends as `tv`.
    version = re.search(rb"const VERSION = '([0-9]+\.[0-9]+\.[0-9]+)';", SOURCE)
    assert version is not None
    assert b"'plowline-js-' + VERSION" in SOURCE
    assert PACKAGED.startswith(b"/*! plowline.js " + version.group(1) + b" | Apache-2.0 |")
    assert len(PACKAGED) < len(SOURCE) / 1.5
    # Serving the script is not tracking: nothing is stored, no cookie is set.
    assert "set-cookie" not in response.headers
    assert collector_app.records() == [] and collector_app.bad_rows() == []


async def test_gzip_for_clients_that_accept_it(collector_app: Harness) -> None:
    status, headers, body = await collector_app.asgi(
        "GET", "/plowline.js", headers=[(b"host", b"c.test"), (b"accept-encoding", b"gzip, deflate, br")])
    assert status == 200
    assert headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(body) == PACKAGED
    assert len(body) < len(PACKAGED) / 2


async def test_a_current_etag_gets_304_and_a_stale_one_the_script(collector_app: Harness) -> None:
    first = await collector_app.client.get("/plowline.js")
    etag = first.headers["etag"]
    cached = await collector_app.client.get("/plowline.js", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag and cached.headers["cache-control"] == "public, max-age=3600"
    several = await collector_app.client.get("/plowline.js", headers={"If-None-Match": f'"old", W/{etag}'})
    assert several.status_code == 304
    stale = await collector_app.client.get("/plowline.js", headers={"If-None-Match": '"0123"', "Accept-Encoding": "identity"})
    assert stale.status_code == 200 and stale.content == PACKAGED


async def test_head_answers_the_headers(collector_app: Harness) -> None:
    response = await collector_app.client.head("/plowline.js")
    assert response.status_code == 200
    assert response.headers["etag"] and response.headers["cache-control"].startswith("public")


async def test_path_max_age_and_file_are_configurable(make_collector: HarnessFactory, tmp_path: Path) -> None:
    custom = tmp_path / "custom.js"
    custom.write_bytes(b"window.custom = true;\n")
    harness = make_collector(tracker_script={"path": "/t.js", "max_age_s": 60, "file": str(custom)})
    response = await harness.client.get("/t.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200 and response.content == b"window.custom = true;\n"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert (await harness.client.get("/plowline.js")).status_code == 404


async def test_disabled_means_404(make_collector: HarnessFactory) -> None:
    harness = make_collector(tracker_script={"enabled": False})
    response = await harness.client.get("/plowline.js")
    assert response.status_code == 404 and response.content == b"Not found"


def test_an_unreadable_file_fails_fast_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"collector\.tracker_script\.file"):
        load_tracker_script(TrackerScriptSettings(file=tmp_path / "missing.js"))


def test_the_path_must_be_one_segment() -> None:
    with pytest.raises(ValueError, match="path"):
        TrackerScriptSettings(path="/a/b.js")
