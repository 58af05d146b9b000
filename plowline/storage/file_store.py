"""What the files and parquet loaders share: a file store (local disk with fsync, or any fsspec URL),
dedupe-key digests, and the loader base that runs writes in a thread and tracks health."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from plowline.errors import TransportError
from plowline.storage.base import Kind
from plowline.streams.file_log.framing import fsync_dir

__all__ = ["STORE_ERRORS", "FileStore", "KeyDigest", "StoreLoader", "digest", "enriched_key"]

KeyDigest = bytes  # a 16-byte BLAKE2b digest of a dedupe key


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    with contextlib.suppress(ImportError):  # remote stores raise their clients' errors too
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    with contextlib.suppress(ImportError):
        from aiohttp import ClientError as AiohttpClientError

        errors.append(AiohttpClientError)
    return tuple(errors)


#: What a file store raises when it is unavailable (the write is retried): OSError and the remote
#: clients' connection and service errors.
STORE_ERRORS: tuple[type[BaseException], ...] = _store_errors()


class FileStore:
    """A directory tree on a local disk or behind fsspec (s3://…), with durable writes.

    Paths are '/'-separated and relative to the root. Local writes fsync the file and, for every
    directory they create, its parent; remote writes are single immutable object uploads.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        self.fs: fsspec.AbstractFileSystem = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.root: str = root.rstrip("/") if root != "/" else root
        self.url = url

    def full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    # --- writes ---------------------------------------------------------------------------------

    def append(self, path: str, data: bytes) -> int:
        """Append `data` to a local file durably; return the file's size after it. On failure the
        file is truncated back to its size before, so it never ends in a partial write."""
        if not self.local:
            raise TypeError("append needs a local store; remote objects are immutable")
        target = Path(self.full(path))
        created = _make_dirs(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        if created or start == 0:
            fsync_dir(target.parent)
        return start + len(data)

    def put(self, path: str, data: bytes) -> None:
        """Create a new file holding `data`, all or nothing: locally a hidden temporary file is
        fsynced and renamed into place (then its directory fsynced); remotely one upload."""
        if not self.local:
            self.fs.pipe_file(self.full(path), data)
            return
        target = Path(self.full(path))
        _make_dirs(target.parent)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        os.close(fd)
        os.replace(temporary, target)
        fsync_dir(target.parent)

    # --- reads ----------------------------------------------------------------------------------

    def sizes(self, path: str) -> dict[str, int]:
        """Every file under `path` (recursively), as relative path → size; {} if there is none."""
        base = self.full(path)
        if self.local:
            out: dict[str, int] = {}
            for directory, _, names in os.walk(base):
                relative = os.path.relpath(directory, base)
                for name in names:
                    with contextlib.suppress(FileNotFoundError):
                        info = os.stat(os.path.join(directory, name))
                        if stat.S_ISREG(info.st_mode):
                            out[name if relative == "." else f"{relative}/{name}"] = info.st_size
            return out
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        prefix = base.rstrip("/") + "/"
        return {
            name[len(prefix):]: int(info.get("size") or 0)
            for name, info in found.items()
            if name.startswith(prefix) and info.get("type", "file") == "file"
        }

    def read(self, path: str, start: int = 0) -> bytes:
        """The bytes of a file from `start`."""
        if self.local:
            with open(self.full(path), "rb") as handle:
                handle.seek(start)
                return handle.read()
        data: bytes = self.fs.cat_file(self.full(path), start=start or None)
        return data


def _make_dirs(directory: Path) -> bool:
    """Create `directory` and its missing parents, fsyncing each new one's parent. True if any was made."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)
    return bool(missing)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --- dedupe keys ------------------------------------------------------------------------------------


def digest(key: bytes) -> KeyDigest:
    return hashlib.blake2b(key, digest_size=16).digest()


def enriched_key(event_id: bytes | str, fingerprint: bytes | str | None) -> KeyDigest:
    """The dedupe digest of (event_id, event_fingerprint); a missing fingerprint is ''."""
    if isinstance(event_id, str):
        event_id = event_id.encode()
    if isinstance(fingerprint, str):
        fingerprint = fingerprint.encode()
    return digest(event_id + b"\t" + (fingerprint or b""))


PartitionState = TypeVar("PartitionState")


class StoreLoader(Generic[PartitionState]):
    """What the files and parquet loaders share: one write at a time, run in a thread so the event loop
    stays free, and health from the last write. A subclass sets `kind`, `store`, `_partitions` (the keys
    known per partition, least recently used first) and implements `_write`."""

    name: ClassVar[str]
    kind: Kind
    store: FileStore
    _partitions: OrderedDict[str, PartitionState]

    def __init__(self) -> None:
        self._healthy = True
        self._lock = asyncio.Lock()

    async def write(self, records: Sequence[bytes]) -> None:
        """Store the records not stored yet and return once they are durable; see the module docstring."""
        if not records:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, self._prepare(records))
            except STORE_ERRORS as exc:
                self._healthy = False
                raise TransportError(f"{self.name} {self.kind} write to {self.store.url} failed: {exc}") from exc
        self._healthy = True

    def healthy(self) -> bool:
        """False from a failed write until a write succeeds."""
        return self._healthy

    async def close(self) -> None:
        """Nothing stays open between writes: every write that returned is durable."""
        async with self._lock:
            self._partitions.clear()

    def _prepare(self, records: Sequence[bytes]) -> list[bytes]:
        return list(records)

    def _write(self, records: list[bytes]) -> None:
        raise NotImplementedError
