"""Iglu schema addressing: SchemaVer, SchemaKey (`iglu:vendor/name/format/M-R-A`) and SchemaCriterion."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from plowline.errors import PermanentError

_URI = re.compile(r"iglu:([a-zA-Z0-9\-_.]+)/([a-zA-Z0-9\-_]+)/([a-zA-Z0-9\-_]+)/([0-9]+-[0-9]+-[0-9]+)")
_VERSION = re.compile(r"([1-9][0-9]*|0)-([0-9]+)-([0-9]+)")
_CRITERION = re.compile(
    r"iglu:([a-zA-Z0-9\-_.]+)/([a-zA-Z0-9\-_]+)/([a-zA-Z0-9\-_]+)/([1-9][0-9]*|\*)-((?:0|[1-9][0-9]*)|\*)-((?:0|[1-9][0-9]*)|\*)"
)


class InvalidSchemaKey(PermanentError):
    """A string that is not an Iglu URI; `code` is Iglu's error name (INVALID_IGLUURI, INVALID_SCHEMAVER)."""

    def __init__(self, message: str, code: str = "INVALID_IGLUURI") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, order=True)
class SchemaVer:
    """MODEL-REVISION-ADDITION."""

    model: int
    revision: int
    addition: int

    @classmethod
    def parse(cls, text: str) -> SchemaVer:
        match = _VERSION.fullmatch(text)
        if match is None:
            raise InvalidSchemaKey(f"{text!r} is not a SchemaVer (MODEL-REVISION-ADDITION)", "INVALID_SCHEMAVER")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.model}-{self.revision}-{self.addition}"


@dataclass(frozen=True, slots=True)
class SchemaKey:
    """The address of one schema in an Iglu repository."""

    vendor: str
    name: str
    format: str
    version: SchemaVer
    # Keys are dict keys in every cache lookup, several per event: hash once, not per lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.vendor, self.name, self.format, self.version)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[SchemaKey], tuple[str, str, str, SchemaVer]]:
        # String hashes differ between processes: a pickled key is rebuilt, never given its old hash.
        return SchemaKey, (self.vendor, self.name, self.format, self.version)

    @classmethod
    def parse(cls, uri: str) -> SchemaKey:
        match = _URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:
            if isinstance(uri, str) and uri.startswith("iglu:") and uri.count("/") == 3:
                SchemaVer.parse(uri.rsplit("/", 1)[1])  # raises INVALID_SCHEMAVER for a bad version
            raise InvalidSchemaKey(f"{uri!r} is not a valid Iglu URI")
        return cls(match.group(1), match.group(2), match.group(3), SchemaVer.parse(match.group(4)))

    @property
    def uri(self) -> str:
        return f"iglu:{self.vendor}/{self.name}/{self.format}/{self.version}"

    @property
    def path(self) -> str:
        """The path of the schema in a static repository, below `schemas/`."""
        return f"{self.vendor}/{self.name}/{self.format}/{self.version}"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, slots=True)
class SchemaCriterion:
    """A pattern over schema keys, e.g. `iglu:com.acme/event/jsonschema/1-*-*`; None means any."""

    vendor: str
    name: str
    format: str
    model: int | None
    revision: int | None = None
    addition: int | None = None

    @classmethod
    def parse(cls, text: str) -> SchemaCriterion:
        match = _CRITERION.fullmatch(text)
        if match is None:
            raise InvalidSchemaKey(f"{text!r} is not a schema criterion like iglu:vendor/name/jsonschema/1-*-*")

        def part(value: str) -> int | None:
            return None if value == "*" else int(value)

        return cls(match.group(1), match.group(2), match.group(3), part(match.group(4)),
                   part(match.group(5)), part(match.group(6)))

    def matches(self, key: SchemaKey) -> bool:
        version = key.version
        return (
            key.vendor == self.vendor
            and key.name == self.name
            and key.format == self.format
            and (self.model is None or self.model == version.model)
            and (self.revision is None or self.revision == version.revision)
            and (self.addition is None or self.addition == version.addition)
        )

    def __str__(self) -> str:
        def part(value: int | None) -> str:
            return "*" if value is None else str(value)

        return (f"iglu:{self.vendor}/{self.name}/{self.format}/"
                f"{part(self.model)}-{part(self.revision)}-{part(self.addition)}")
