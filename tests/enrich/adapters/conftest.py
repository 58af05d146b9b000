"""Adapter test fixtures: a real Resolver over the spec's iglu-central copy (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plowline.enrich.adapters import adapter_for
from plowline.enrich.errors import AdapterFailure
from plowline.enrich.loader import load_request
from plowline.enrich.raw_event import RawEvent
from plowline.iglu.repositories import EmbeddedRepository, LocalRepository
from plowline.iglu.resolver import Resolver

IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central"


def make_resolver() -> Resolver:
    """Embedded schemas, then iglu-central from disk; no HTTP repository, so tests never touch the network."""
    return Resolver([], preferred=[EmbeddedRepository(), LocalRepository(IGLU_CENTRAL)])


@pytest.fixture(scope="session")
def resolver() -> Iterator[Resolver]:
    with make_resolver() as built:
        yield built


def raw_events(record: bytes, resolver: Resolver) -> list[RawEvent]:
    """What the pipeline does first: load the record, pick the adapter, make the raw events."""
    request = load_request(record)
    return adapter_for(request.vendor, request.version).to_raw_events(request, resolver)


def failure_messages(record: bytes, resolver: Resolver) -> list[dict[str, object]]:
    with pytest.raises(AdapterFailure) as caught:
        raw_events(record, resolver)
    return caught.value.messages
