"""The adapter registry: lookup by vendor/version, the unsupported-combination failure, failure routing."""

from __future__ import annotations

import pytest

from plowline.enrich.adapters import ADAPTERS, adapter_for, is_tracker_protocol
from plowline.enrich.adapters.iglu_webhook import IgluWebhookAdapter
from plowline.enrich.adapters.redirect import RedirectAdapter
from plowline.enrich.adapters.tracker_protocol import Tp1Adapter, Tp2Adapter
from plowline.enrich.errors import AdapterFailure
from plowline.iglu.resolver import Resolver
from tests.enrich.adapters.conftest import failure_messages
from tests.enrich.adapters.examples import Example

REGISTERED = [
    ("com.snowplowanalytics.snowplow", "tp1", Tp1Adapter),
    ("com.snowplowanalytics.snowplow", "tp2", Tp2Adapter),
    ("r", "tp2", RedirectAdapter),
    ("com.snowplowanalytics.iglu", "v1", IgluWebhookAdapter),
]


@pytest.mark.parametrize(("vendor", "version", "kind"), REGISTERED, ids=[f"{v}/{n}" for v, n, _ in REGISTERED])
def test_adapter_for(vendor: str, version: str, kind: type) -> None:
    adapter = adapter_for(vendor, version)
    assert isinstance(adapter, kind)
    assert (adapter.vendor, adapter.version) == (vendor, version)


def test_registry_names() -> None:
    assert ADAPTERS.names() == sorted(f"{vendor}/{version}" for vendor, version, _ in REGISTERED)


UNSUPPORTED = [("com.acme", "v1"), ("com.snowplowanalytics.snowplow", "i"), ("com.snowplowanalytics.snowplow", "tp3"),
               ("r", "tp1"), ("com.snowplowanalytics.iglu", "v2")]


@pytest.mark.parametrize(("vendor", "version"), UNSUPPORTED, ids=[f"{v}/{n}" for v, n in UNSUPPORTED])
def test_unsupported_vendor_version(vendor: str, version: str) -> None:
    with pytest.raises(AdapterFailure) as caught:
        adapter_for(vendor, version)
    assert caught.value.messages == [{
        "field": "vendor/version",
        "value": f"{vendor}/{version}",
        "expectation": "vendor/version combination is not supported",
    }]


def test_unsupported_vendor_version_from_a_record(resolver: Resolver) -> None:
    assert failure_messages(Example("GET", "/com.acme/v1", "a=1").record(), resolver) == [{
        "field": "vendor/version", "value": "com.acme/v1", "expectation": "vendor/version combination is not supported"}]


ROUTING = [
    ("com.snowplowanalytics.snowplow", "tp2", True),
    ("r", "tp2", True),
    # Enrich routes on version tp2 only: a TP1 failure is an adapter_failures bad row.
    ("com.snowplowanalytics.snowplow", "tp1", False),
    ("com.snowplowanalytics.snowplow", "tp3", False),
    ("com.snowplowanalytics.iglu", "v1", False),
    ("com.acme", "tp2", False),
    ("r", "tp1", False),
]


@pytest.mark.parametrize(("vendor", "version", "expected"), ROUTING, ids=[f"{v}/{n}" for v, n, _ in ROUTING])
def test_is_tracker_protocol(vendor: str, version: str, expected: bool) -> None:
    assert is_tracker_protocol(vendor, version) is expected
