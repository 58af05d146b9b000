"""event_fingerprint_config: event_fingerprint, a hash of the tracker parameters (spec/enrich.md 2.10)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["ALGORITHMS", "EventFingerprint", "fingerprint"]

ALGORITHMS: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA384": hashlib.sha384,
    "SHA512": hashlib.sha512,
}
_SEPARATOR = "\x1f"  # ASCII unit separator, after every key and every value


def fingerprint(parameters: Mapping[str, str | None], excluded: frozenset[str],
                algorithm: Callable[[bytes], Any] = hashlib.md5) -> str:
    """Hash of `key US value US` for each non-null parameter not excluded, sorted by key; lowercase hex."""
    items = sorted(parameters.items())  # keys are unique, so values are never compared
    if excluded:
        text = "".join([f"{key}{_SEPARATOR}{value}{_SEPARATOR}" for key, value in items
                        if value is not None and key not in excluded])
    else:
        text = "".join([f"{key}{_SEPARATOR}{value}{_SEPARATOR}" for key, value in items if value is not None])
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate: Java's getBytes(UTF_8) writes "?" for it, as does "replace"
        data = text.encode("utf-8", errors="replace")
    return str(algorithm(data).hexdigest())


class EventFingerprint:
    """event_fingerprint_config 1-0-*: `hashAlgorithm` (MD5, SHA1, SHA256, SHA384, SHA512), `excludeParameters`."""

    config_name: ClassVar[str] = "event_fingerprint_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/event_fingerprint_config/jsonschema/1-0-*")

    def __init__(self, algorithm: str = "MD5", exclude: Iterable[str] = ()) -> None:
        self.algorithm_name = algorithm
        self.algorithm = ALGORITHMS[algorithm]
        self.excluded = frozenset(exclude)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        algorithm = parameters.get("hashAlgorithm")
        if algorithm not in ALGORITHMS:
            raise EnrichmentConfigError("parameters.hashAlgorithm", f"{algorithm!r} is not a supported hash",
                                        f"use one of {', '.join(ALGORITHMS)}")
        exclude = parameters.get("excludeParameters")
        if not isinstance(exclude, list) or not all(isinstance(name, str) for name in exclude):
            raise EnrichmentConfigError("parameters.excludeParameters", "must be a list of parameter names",
                                        'set "excludeParameters": ["eid", "nuid", "stm", "cv"] or []')
        return cls(algorithm, exclude)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        event.event_fingerprint = fingerprint(raw.parameters, self.excluded, self.algorithm)
        return ()
