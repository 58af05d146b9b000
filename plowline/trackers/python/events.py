"""The event types the tracker sends, each turned into its tracker-protocol parameters (spec §1.2, §1.4).

Every event may carry entities (`context`), a true timestamp (`true_timestamp` → `ttm`, which then becomes
the enriched `derived_tstamp`) and a per-event `subject` that overrides the tracker's. Screen views and link
clicks are self-describing events with Snowplow's own schemas; an ecommerce transaction is one `tr` event plus
one `ti` event per item, as Snowplow's trackers send them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from plowline.trackers.python.payload import SelfDescribingJson, millis, unstruct_parameter
from plowline.trackers.python.subject import Subject

SCREEN_VIEW_SCHEMA = "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0"
LINK_CLICK_SCHEMA = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"

Number = int | float | Decimal


def _number(value: Number) -> str:
    """A decimal as text without exponent (Enrich parses BigDecimal; `1E+3` would be normalised anyway)."""
    if isinstance(value, bool):
        raise TypeError("a number is expected, not a bool")
    if isinstance(value, float):
        return repr(value) if "e" not in repr(value) else format(Decimal(repr(value)), "f")
    return format(Decimal(value), "f") if isinstance(value, Decimal) else str(value)


def _pairs(**values: str | Number | None) -> dict[str, str]:
    """The parameters whose value is set (trackers never send empty values)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        out[name] = value if isinstance(value, str) else _number(value)
    return out


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event may carry besides its own fields."""

    context: Sequence[SelfDescribingJson] = ()
    true_timestamp: float | datetime | None = None  # seconds since the epoch (time.time()) or an aware datetime
    subject: Subject | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        """The event's own tracker-protocol pairs (`e` and its fields)."""
        raise NotImplementedError

    def common(self) -> dict[str, str]:
        return {} if self.true_timestamp is None else {"ttm": millis(self.true_timestamp)}


@dataclass(frozen=True, kw_only=True)
class PageView(Event):
    """`e=pv`: a page was viewed."""

    page_url: str
    page_title: str | None = None
    referrer: str | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        return {"e": "pv", **_pairs(url=self.page_url, page=self.page_title, refr=self.referrer)}


@dataclass(frozen=True, kw_only=True)
class PagePing(Event):
    """`e=pp`: the page is still open; scroll offsets as `pp_mix`/`pp_max`/`pp_miy`/`pp_may`."""

    page_url: str
    page_title: str | None = None
    referrer: str | None = None
    min_x: int | None = None
    max_x: int | None = None
    min_y: int | None = None
    max_y: int | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        return {"e": "pp", **_pairs(url=self.page_url, page=self.page_title, refr=self.referrer, pp_mix=self.min_x,
                                    pp_max=self.max_x, pp_miy=self.min_y, pp_may=self.max_y)}


@dataclass(frozen=True, kw_only=True)
class StructuredEvent(Event):
    """`e=se`: category, action and optional label, property and numeric value."""

    category: str
    action: str
    label: str | None = None
    property_: str | None = None
    value: Number | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        if not self.category or not self.action:
            raise ValueError("a structured event needs a category and an action")
        return {"e": "se", **_pairs(se_ca=self.category, se_ac=self.action, se_la=self.label, se_pr=self.property_,
                                    se_va=self.value)}


@dataclass(frozen=True, kw_only=True)
class SelfDescribing(Event):
    """`e=ue`: a self-describing event, wrapped in unstruct_event/1-0-0 as `ue_px` (base64) or `ue_pr`."""

    event: SelfDescribingJson

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        return {"e": "ue", **unstruct_parameter(self.event, encode_base64)}


@dataclass(frozen=True, kw_only=True)
class ScreenView(Event):
    """A screen view: self-describing, iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0.

    `id_` is the screen view's UUID (a new one when not given), which a later view names as `previous_id`.
    """

    name: str
    id_: str = field(default_factory=lambda: str(uuid.uuid4()))
    type_: str | None = None
    previous_name: str | None = None
    previous_id: str | None = None
    previous_type: str | None = None
    transition_type: str | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        data: dict[str, Any] = {"name": self.name, "id": self.id_}
        optional = {"type": self.type_, "previousName": self.previous_name, "previousId": self.previous_id,
                    "previousType": self.previous_type, "transitionType": self.transition_type}
        data.update({key: value for key, value in optional.items() if value is not None})
        return {"e": "ue", **unstruct_parameter(SelfDescribingJson(SCREEN_VIEW_SCHEMA, data), encode_base64)}


@dataclass(frozen=True, kw_only=True)
class LinkClick(Event):
    """A link click: self-describing, iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1."""

    target_url: str
    element_id: str | None = None
    element_classes: Sequence[str] | None = None
    element_target: str | None = None
    element_content: str | None = None

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        data: dict[str, Any] = {"targetUrl": self.target_url}
        optional: dict[str, Any] = {
            "elementId": self.element_id,
            "elementClasses": None if self.element_classes is None else list(self.element_classes),
            "elementTarget": self.element_target,
            "elementContent": self.element_content,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return {"e": "ue", **unstruct_parameter(SelfDescribingJson(LINK_CLICK_SCHEMA, data), encode_base64)}


@dataclass(frozen=True, kw_only=True)
class EcommerceItem:
    """One line of a transaction (`e=ti`); its order id and currency come from the transaction."""

    sku: str
    price: Number
    quantity: int
    name: str | None = None
    category: str | None = None
    context: Sequence[SelfDescribingJson] = ()


@dataclass(frozen=True, kw_only=True)
class EcommerceTransaction(Event):
    """`e=tr` plus one `e=ti` per item (legacy ecommerce). Every item event shares the transaction's
    `ttm` (and, from the tracker, its `dtm`), so they can be joined back to it."""

    order_id: str
    total_value: Number
    affiliation: str | None = None
    tax_value: Number | None = None
    shipping: Number | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    currency: str | None = None
    items: Sequence[EcommerceItem] = ()

    def parameters(self, encode_base64: bool) -> dict[str, str]:
        return {"e": "tr", **_pairs(tr_id=self.order_id, tr_tt=self.total_value, tr_af=self.affiliation,
                                    tr_tx=self.tax_value, tr_sh=self.shipping, tr_ci=self.city, tr_st=self.state,
                                    tr_co=self.country, tr_cu=self.currency)}

    def item_parameters(self, item: EcommerceItem) -> dict[str, str]:
        return {"e": "ti", **_pairs(ti_id=self.order_id, ti_sk=item.sku, ti_nm=item.name, ti_ca=item.category,
                                    ti_pr=item.price, ti_qu=item.quantity, ti_cu=self.currency)}
