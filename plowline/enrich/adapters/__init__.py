"""ADAPTERS: "vendor/version" → adapter; `adapter_for` picks one and `is_tracker_protocol` routes its failures.

An adapter's AdapterFailure becomes one bad row (Enrich's AdapterRegistry.enrichFailure):

* com.snowplowanalytics.snowplow/tp2 and r/tp2 → `tracker_protocol_violations`;
* every other vendor/version → `adapter_failures`: TP1 (Enrich routes on version `tp2` only), the
  Iglu webhook, and a vendor/version no adapter handles.
"""

from __future__ import annotations

from plowline.enrich.adapters.base import Adapter
from plowline.enrich.adapters.common import input_data
from plowline.enrich.adapters.iglu_webhook import IgluWebhookAdapter
from plowline.enrich.adapters.redirect import RedirectAdapter
from plowline.enrich.adapters.tracker_protocol import Tp1Adapter, Tp2Adapter
from plowline.enrich.errors import AdapterFailure
from plowline.registry import Registry

__all__ = ["ADAPTERS", "Adapter", "adapter_for", "is_tracker_protocol"]

_TRACKER_PROTOCOL_VENDORS = frozenset({"com.snowplowanalytics.snowplow", "r"})


def _entry(adapter: Adapter) -> tuple[str, Adapter]:
    return f"{adapter.vendor}/{adapter.version}", adapter


ADAPTERS: Registry[Adapter] = Registry("adapter", [
    _entry(Tp1Adapter()),
    _entry(Tp2Adapter()),
    _entry(RedirectAdapter()),
    _entry(IgluWebhookAdapter()),
])


def adapter_for(vendor: str, version: str) -> Adapter:
    """The adapter for a request's vendor/version; AdapterFailure (Enrich's message) if there is none."""
    key = f"{vendor}/{version}"
    if key not in ADAPTERS:
        raise AdapterFailure([input_data("vendor/version", key, "vendor/version combination is not supported")])
    return ADAPTERS.get(key)


def is_tracker_protocol(vendor: str, version: str) -> bool:
    """Whether this vendor/version's failures are tracker_protocol_violations (else adapter_failures)."""
    return version == "tp2" and vendor in _TRACKER_PROTOCOL_VENDORS
