"""LocalAssetStore: the local file for an enrichment's `uri` + `database`: a path, a download, or built in."""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from plowline.enrich.errors import EnrichmentConfigError

__all__ = ["BUILTIN_URI", "LocalAssetStore", "asset_uri"]

#: The `uri` that names data files shipped inside Plowline (e.g. the default referers database).
BUILTIN_URI = "plowline://builtin"
_BUILTIN_PACKAGE = "plowline.enrich.enrichments"
_DOWNLOAD_TIMEOUT_S = 60.0


def asset_uri(uri: str, database: str) -> str:
    """Snowplow's file location: `uri + "/" + database` (a trailing `/` on uri is not doubled)."""
    return uri.rstrip("/") + "/" + database


class LocalAssetStore:
    """Finds enrichment data files the way Snowplow enrich does, for a single machine.

    * `file:///abs/dir`, `file:relative/dir`, `/abs/dir` or `relative/dir`: a local file; relative
      paths are relative to `base_dir` (the enrichment config directory). The config schemas want a
      URI, so `file:relative/dir` is the spelling that passes Iglu validation.
    * `http://` / `https://`: downloaded once into `cache_dir` (kept across restarts) and read from there.
    * `plowline://builtin`: a data file shipped in the package.
    * `s3://`, `gs://`: not supported yet; a clear error says what to do instead.
    """

    def __init__(self, base_dir: Path | str, cache_dir: Path | str) -> None:
        self.base_dir = Path(base_dir)
        self.cache_dir = Path(cache_dir)

    def path(self, uri: str, database: str) -> Path:
        if not database or "/" in database or database in (".", ".."):
            raise EnrichmentConfigError(
                "database", f"{database!r} is not a file name", "give the file name alone and its folder in uri")
        location = asset_uri(uri, database)
        scheme = urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            return self._download(location, database)
        if scheme == "file":
            return self._existing(self.base_dir / unquote(urlsplit(location).path), location)
        if location.startswith(BUILTIN_URI + "/"):
            return self._builtin(database, location)
        if scheme in ("s3", "gs"):
            raise EnrichmentConfigError(
                "uri", f"{location}: {scheme}:// assets are not supported yet",
                f"copy {database} next to the enrichment configs and set uri to that folder (or an https:// URL)")
        if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive letter
            raise EnrichmentConfigError(
                "uri", f"{location}: unknown URI scheme {scheme!r}",
                "use file://, http(s)://, a local path, or plowline://builtin")
        return self._existing(self.base_dir / uri / database, location)

    @staticmethod
    def _existing(path: Path, location: str) -> Path:
        if not path.is_file():
            raise EnrichmentConfigError(
                "uri", f"{location}: no such file ({path})", "check uri and database, or put the file there")
        return path

    @staticmethod
    def _builtin(database: str, location: str) -> Path:
        candidate = resources.files(_BUILTIN_PACKAGE).joinpath(database)
        if not candidate.is_file():
            raise EnrichmentConfigError(
                "uri", f"{location}: Plowline ships no data file {database!r}", "use referers.json, or your own file")
        return Path(str(candidate))

    def _download(self, url: str, database: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        target = self.cache_dir / f"{digest}-{database}"
        if target.is_file():
            return target
        import httpx  # only deployments that name http(s) assets need it

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{digest}-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out, httpx.stream(
                "GET", url, follow_redirects=True, timeout=_DOWNLOAD_TIMEOUT_S
            ) as response:
                if response.status_code != 200:
                    raise EnrichmentConfigError(
                        "uri", f"{url}: download failed with HTTP {response.status_code}",
                        "check the URL, or download the file yourself and point uri at its folder")
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(partial, target)  # atomic: a crash never leaves a truncated database in the cache
        except httpx.HTTPError as exc:
            raise EnrichmentConfigError(
                "uri", f"{url}: download failed ({exc})",
                "check the network, or download the file yourself and point uri at its folder") from exc
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return target
