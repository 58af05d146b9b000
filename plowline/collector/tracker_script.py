"""Serves plowline.js, Plowline's browser tracker, at `/plowline.js` with cache headers.

The script is a file of the `plowline` distribution: `plowline/trackers/js/plowline.min.js`, the
minified build of the readable `plowline.js` beside it (scripts/build-plowline-js.sh; a test keeps the
two in step), so browsers download about 7 KB gzipped instead of 12.
The collector reads it through `importlib.resources` from the `plowline` root package by path, so
it never imports `plowline.trackers`: the trackers subsystem stays independent of the collector, as
the import contracts require, and the file is found the same way in a checkout, a wheel or a zip.
`collector.tracker_script.file` replaces it with another file (a custom build, a pinned version).

The file is read once at start-up; its ETag is a hash of the bytes, so a new release changes it, and
a browser holding the current copy gets a bodyless 304.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from plowline.config import TrackerScriptSettings
from plowline.errors import ConfigError

JAVASCRIPT = (b"content-type", b"text/javascript; charset=utf-8")
_PACKAGED = "trackers/js/plowline.min.js"


@dataclass(frozen=True, slots=True)
class TrackerScript:
    """The script's bytes (plain and gzipped once, up front) and the headers every answer carries."""

    body: bytes
    gzipped: bytes
    etag: bytes
    cache_control: bytes

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [JAVASCRIPT, (b"cache-control", self.cache_control), (b"etag", self.etag), (b"vary", b"Accept-Encoding")]

    def encoded(self, accept_encoding: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """Headers and body for a 200: gzipped when the client accepts it (browsers do), else plain."""
        accepted = {part.split(b";")[0].strip().lower() for part in (accept_encoding or b"").split(b",")}
        if b"gzip" in accepted:
            return [*self.headers(), (b"content-encoding", b"gzip")], self.gzipped
        return self.headers(), self.body

    def matches(self, if_none_match: bytes | None) -> bool:
        """True when the browser's If-None-Match names the current version (or is `*`)."""
        if if_none_match is None:
            return False
        tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return self.etag in tags or b"*" in tags


def load_tracker_script(settings: TrackerScriptSettings) -> TrackerScript | None:
    """The script to serve, or None when serving it is turned off. A configured file that cannot be read fails fast."""
    if not settings.enabled:
        return None
    if settings.file is not None:
        try:
            body = settings.file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                "collector.tracker_script.file",
                f"cannot read {settings.file} ({exc.strerror})",
                "point it at a readable JavaScript file, or remove the key to serve the packaged plowline.js",
            ) from exc
    else:
        body = resources.files("plowline").joinpath(_PACKAGED).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:32]
    return TrackerScript(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag=f'"{digest}"'.encode(),
        cache_control=f"public, max-age={settings.max_age_s}".encode(),
    )
