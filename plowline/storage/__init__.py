"""Storage: loaders that keep enriched events and bad rows (files, Parquet, DuckDB, PostgreSQL).

LOADERS maps a loader's name to the function that opens it for one kind of record. Each entry
imports its module only when used, so a pipeline that loads into files never imports a database
driver.
"""

from __future__ import annotations

from collections.abc import Callable

from plowline.config import Settings
from plowline.registry import Registry
from plowline.storage.base import Kind, Loader

__all__ = ["LOADERS", "Kind", "Loader", "open_loader"]

LoaderOpener = Callable[[Settings, Kind], Loader]


def _files(settings: Settings, kind: Kind) -> Loader:
    from plowline.storage.files import open_files_loader

    return open_files_loader(settings, kind)


def _parquet(settings: Settings, kind: Kind) -> Loader:
    from plowline.storage.parquet import open_parquet_loader

    return open_parquet_loader(settings, kind)


def _duckdb(settings: Settings, kind: Kind) -> Loader:
    from plowline.storage.duckdb import open_duckdb_loader

    return open_duckdb_loader(settings, kind)


def _postgres(settings: Settings, kind: Kind) -> Loader:
    from plowline.storage.postgres import open_postgres_loader

    return open_postgres_loader(settings, kind)


LOADERS: Registry[LoaderOpener] = Registry("loader", [
    ("files", _files),        # gzip TSV / JSON lines by hour, local or s3:// (fsspec)
    ("parquet", _parquet),    # a typed lake partitioned by date
    ("duckdb", _duckdb),      # the embedded warehouse, atomic.events
    ("postgres", _postgres),  # PostgreSQL atomic.events, COPY in batches
])


def open_loader(name: str, settings: Settings, kind: Kind) -> Loader:
    """Open the loader called `name` for enriched events or bad rows."""
    return LOADERS.get(name)(settings, kind)
