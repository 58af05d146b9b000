"""Iglu repositories: the package's embedded schemas, local folders, static HTTP repositories, Iglu Server."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from plowline.errors import ConfigError
from plowline.iglu.errors import InvalidSchemaDocument, RepositoryUnavailable
from plowline.schema_key import InvalidSchemaKey, SchemaKey, SchemaVer

__all__ = [
    "EMBEDDED_NAME",
    "PACKAGE_PATHS",
    "EmbeddedRepository",
    "IgluServerRepository",
    "LocalRepository",
    "Repository",
    "StaticHttpRepository",
]

EMBEDDED_NAME = "Iglu Client Embedded"
"""Snowplow's name for the client's own embedded registry; kept so lookupHistory reads the same."""

PACKAGE_PATHS = frozenset({"/iglu-embedded", "/iglu-client-embedded"})
"""`embedded.path` values that mean "the schemas shipped in this package" rather than a directory."""

LOCAL_CLASS_PRIORITY = 1
HTTP_CLASS_PRIORITY = 100

_VERSION_FILE = re.compile(r"([1-9][0-9]*|0)-([0-9]+)-([0-9]+)")


class Repository(Protocol):
    """One Iglu repository, as listed in a resolver config.

    `lookup` makes one attempt and may block (HTTP: connect timeout 1 s, read 4 s). It returns the schema,
    None when the repository certainly does not hold it, raises RepositoryUnavailable when the repository
    could not answer (the resolver retries and, if nothing else has the schema, gives up without making a
    bad row), and InvalidSchemaDocument when what it holds is not a JSON object. `class_priority` orders
    repository types (local before HTTP); `priority` orders repositories of one type; both ascending.
    """

    name: str
    priority: int
    vendor_prefixes: tuple[str, ...]
    class_priority: int

    def lookup(self, key: SchemaKey) -> dict[str, Any] | None: ...

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        """The `jsonschema` keys of one model, ascending; None when this repository cannot list."""
        ...

    def close(self) -> None: ...


def _parse_schema(raw: bytes, where: str) -> dict[str, Any]:
    try:
        schema = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSchemaDocument(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidSchemaDocument(f"{where} is not a JSON object")
    return schema


def _unsafe(key: SchemaKey) -> bool:
    # The SchemaKey grammar lets a vendor be "." or "..", which would step out of a static tree.
    return key.vendor in {".", ".."}


class _Base:
    """Common ground of the built-in repositories, so a list of them type-checks as `Repository`s."""

    name: str
    priority: int
    vendor_prefixes: tuple[str, ...]
    class_priority: int

    def lookup(self, key: SchemaKey) -> dict[str, Any] | None:
        raise NotImplementedError

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _StaticTree(_Base):
    """Shared reading of the static layout `<root>/<vendor>/<name>/<format>/<version>`."""

    _root: Traversable

    def lookup(self, key: SchemaKey) -> dict[str, Any] | None:
        if _unsafe(key):
            return None
        file = self._root.joinpath(key.vendor, key.name, key.format, str(key.version))
        try:
            raw = file.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError):
            return None
        except OSError as exc:
            raise RepositoryUnavailable(f"{self.name}: cannot read {key.path}: {exc}") from exc
        return _parse_schema(raw, f"{self.name}: {key.path}")

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        if vendor in {".", ".."}:
            return []
        folder = self._root.joinpath(vendor, name, "jsonschema")
        try:
            entries = [entry.name for entry in folder.iterdir() if entry.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        versions = []
        for entry in entries:
            match = _VERSION_FILE.fullmatch(entry)
            if match is not None and int(match.group(1)) == model:
                versions.append(SchemaVer(model, int(match.group(2)), int(match.group(3))))
        return [SchemaKey(vendor, name, "jsonschema", version) for version in sorted(versions)]


class EmbeddedRepository(_StaticTree):
    """Schemas shipped inside Plowline (`plowline/iglu/schemas/`), or Snowplow's `connection.embedded`.

    Snowplow reads `embedded.path` from the JVM classpath. Plowline maps it: no path, "/iglu-embedded" or
    "/iglu-client-embedded" mean the package's own schemas; any other path is a directory in static layout
    (`<path>/schemas/<vendor>/...`, relative paths taken from `base_dir`). A directory that does not exist
    holds nothing, as a missing classpath resource holds nothing for Snowplow (`exists` tells the caller).
    """

    class_priority = LOCAL_CLASS_PRIORITY

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str = EMBEDDED_NAME,
        priority: int = 0,
        vendor_prefixes: Sequence[str] = (),
        base_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.priority = priority
        self.vendor_prefixes = tuple(vendor_prefixes)
        if path is None or str(path) in PACKAGE_PATHS:
            self.path: Path | None = None
            self._root = resources.files("plowline.iglu").joinpath("schemas")
            self.exists = True
        else:
            directory = Path(path)
            if not directory.is_absolute() and base_dir is not None:
                directory = base_dir / directory
            self.path = directory
            self._root = directory / "schemas"
            self.exists = self._root.is_dir()

    def __repr__(self) -> str:
        return f"EmbeddedRepository({self.name!r}, path={self.path or 'package'!s})"


class LocalRepository(_StaticTree):
    """A directory in static layout `DIR/schemas/<vendor>/<name>/jsonschema/<version>` (`plowline --iglu DIR`).

    Unlike an embedded path from a Snowplow config, a missing directory is a configuration error here.
    """

    class_priority = LOCAL_CLASS_PRIORITY

    def __init__(
        self, directory: str | Path, *, name: str | None = None, priority: int = 0, vendor_prefixes: Sequence[str] = ()
    ) -> None:
        self.directory = Path(directory)
        if not (self.directory / "schemas").is_dir():
            raise ConfigError(
                "iglu",
                f"{self.directory} is not an Iglu repository: it has no schemas/ folder",
                "point at the folder that contains schemas/<vendor>/<name>/jsonschema/<version>",
            )
        self.name = name or str(self.directory)
        self.priority = priority
        self.vendor_prefixes = tuple(vendor_prefixes)
        self._root = self.directory / "schemas"

    def __repr__(self) -> str:
        return f"LocalRepository({self.name!r}, {str(self.directory)!r})"


class _HttpRepository(_Base):
    """Shared HTTP lookup: GET `<base>/schemas/<vendor>/<name>/<format>/<version>`, optional `apikey` header.

    2xx = found; 408, 429 and 5xx, timeouts and connection errors = RepositoryUnavailable; any other
    status = not found (Snowplow's client treats every non-2xx as NotFound; Plowline keeps server trouble
    transient so it never becomes a bad row). The httpx client is pooled, made on first use and remade
    after a fork, so a resolver built before worker processes start never shares sockets between them.
    """

    class_priority = HTTP_CLASS_PRIORITY

    def __init__(
        self,
        base: str,
        apikey: str | None,
        *,
        name: str,
        priority: int,
        vendor_prefixes: Sequence[str],
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        try:
            url = httpx.URL(base)
        except httpx.InvalidURL as exc:
            raise ConfigError("uri", f"{base!r} is not a URL: {exc}", "use http(s)://host[/path]") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigError("uri", f"{base!r} is not an http(s) URL", "use http(s)://host[/path]")
        self.base = base.rstrip("/")
        self.apikey = apikey
        self.name = name
        self.priority = priority
        self.vendor_prefixes = tuple(vendor_prefixes)
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid = 0

    def _http(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            headers = {"apikey": self.apikey} if self.apikey else {}
            self._client = httpx.Client(
                timeout=self._timeout, headers=headers, follow_redirects=True, transport=self._transport
            )
            self._pid = os.getpid()
        return self._client

    def _get(self, url: str) -> httpx.Response | None:
        try:
            response = self._http().get(url)
        except httpx.RequestError as exc:
            raise RepositoryUnavailable(f"{self.name}: GET {url} failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status in {408, 429} or status >= 500:
            raise RepositoryUnavailable(f"{self.name}: GET {url} answered HTTP {status}")
        return None

    def lookup(self, key: SchemaKey) -> dict[str, Any] | None:
        if _unsafe(key):
            return None
        url = f"{self.base}/schemas/{key.path}"
        response = self._get(url)
        if response is None:
            return None
        return _parse_schema(response.content, f"{self.name}: {url}")

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


class StaticHttpRepository(_HttpRepository):
    """A static Iglu repository over HTTP, such as Iglu Central: `<uri>/schemas/<vendor>/<name>/jsonschema/<v>`.

    Static repositories have no listing endpoint, so `list_versions` answers None without a request.
    """

    def __init__(
        self,
        uri: str,
        apikey: str | None = None,
        *,
        name: str | None = None,
        priority: int = 0,
        vendor_prefixes: Sequence[str] = (),
        connect_timeout: float = 1.0,
        read_timeout: float = 4.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            uri, apikey, name=name or uri, priority=priority, vendor_prefixes=vendor_prefixes,
            connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport,
        )

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        return None

    def __repr__(self) -> str:
        return f"StaticHttpRepository({self.name!r}, {self.base!r})"


class IgluServerRepository(_HttpRepository):
    """An Iglu Server: schemas at `<server>/api/schemas/<vendor>/<name>/<format>/<version>`, read with `apikey`.

    `uri` is the server (`https://iglu.acme.com`) or, as Snowplow resolver configs write it, the API root
    (`https://iglu.acme.com/api`); both give the same URLs, because Snowplow's client queries an http
    repository at `<uri>/schemas/...` and Iglu Server serves `/api/schemas/...`. Listing one model uses
    the server's `/api/schemas/<vendor>/<name>/jsonschema/<model>` endpoint.
    """

    def __init__(
        self,
        uri: str,
        apikey: str | None = None,
        *,
        name: str | None = None,
        priority: int = 0,
        vendor_prefixes: Sequence[str] = (),
        connect_timeout: float = 1.0,
        read_timeout: float = 4.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = uri.rstrip("/")
        if not base.endswith("/api"):
            base += "/api"
        super().__init__(
            base, apikey, name=name or uri, priority=priority, vendor_prefixes=vendor_prefixes,
            connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport,
        )

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        url = f"{self.base}/schemas/{vendor}/{name}/jsonschema/{model}"
        response = self._get(url)
        if response is None:
            return []
        try:
            listed = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise InvalidSchemaDocument(f"{self.name}: {url} is not a JSON list of schemas: {exc}") from exc
        keys = []
        for item in listed if isinstance(listed, list) else []:
            uri = item if isinstance(item, str) else None
            if isinstance(item, dict) and isinstance(item.get("self"), dict):
                meta = item["self"]
                uri = f"iglu:{meta.get('vendor')}/{meta.get('name')}/{meta.get('format')}/{meta.get('version')}"
            try:
                key = SchemaKey.parse(uri) if uri is not None else None
            except InvalidSchemaKey:
                key = None
            if key is not None and key.format == "jsonschema" and key.version.model == model:
                keys.append(key)
        return sorted(set(keys), key=lambda k: k.version)

    def __repr__(self) -> str:
        return f"IgluServerRepository({self.name!r}, {self.base!r})"
