"""The no-JavaScript pixel: a tp1 GET `/i` URL (or `<img>` tag) for e-mails and pages without JavaScript.

The URL carries a page view (`e=pv`) or, with `struct`, a structured event (`e=se`), plus `url`, `page`, `aid`,
`p` and `tv`, every value percent-encoded as UTF-8 (spaces as `%20`, which every mail client keeps intact).

A static pixel is fetched many times (each open of the e-mail is a new event), so by default it carries no
`eid` and no `dtm`: the time is then the collector's (`collector_tstamp`, also the `derived_tstamp`) and Enrich
gives each fetch its own event_id, derived deterministically from the raw record (a hash of the collector
payload, which holds the request's time and network user id, and the event's index in it; see
`plowline.enrich.pipeline`). So two opens are two events, while a redelivery or replay of the *same* raw
record yields the same event_id and is stored once. Pass `event_id` to bake an eid in (every fetch is then
the same event, deduplicated downstream: "opened at least once") or `timestamp_ms` to bake in `dtm`.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, urlencode, urlsplit

from plowline import __version__

#: `tv` of pixel events (the enriched `v_tracker`); Snowplow's own pixel uses `no-js-0.1.0`.
PIXEL_TRACKER_VERSION = f"plowline-no-js-{__version__}"
GET_PATH = "/i"


@dataclass(frozen=True, slots=True)
class StructFields:
    """A structured event's fields: category and action are required, the others optional."""

    category: str
    action: str
    label: str | None = None
    property_: str | None = None
    value: Decimal | None = None

    @classmethod
    def parse(cls, text: str) -> StructFields:
        """`category,action[,label[,property[,value]]]`; empty parts are left out; value must be a number."""
        parts = [part.strip() for part in text.split(",")]
        if len(parts) < 2 or len(parts) > 5 or not parts[0] or not parts[1]:
            raise ValueError(f"expected category,action[,label[,property[,value]]], not {text!r}")
        parts += [""] * (5 - len(parts))
        value: Decimal | None = None
        if parts[4]:
            try:
                value = Decimal(parts[4])
            except InvalidOperation:
                raise ValueError(f"the structured event's value must be a number, not {parts[4]!r}") from None
            if not value.is_finite():
                raise ValueError(f"the structured event's value must be a finite number, not {parts[4]!r}")
        return cls(parts[0], parts[1], parts[2] or None, parts[3] or None, value)

    def parameters(self) -> dict[str, str]:
        values = {"se_ca": self.category, "se_ac": self.action, "se_la": self.label, "se_pr": self.property_,
                  "se_va": None if self.value is None else format(self.value, "f")}
        return {name: value for name, value in values.items() if value}


def collector_base(collector: str) -> str:
    """The collector's base URL (scheme and host, maybe a path prefix), without a trailing slash."""
    parts = urlsplit(collector)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the collector must be an http:// or https:// URL, not {collector!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the collector URL may not have a query or fragment: {collector!r}")
    return collector.rstrip("/")


def pixel_url(
    collector: str,
    page_url: str,
    *,
    page_title: str | None = None,
    app_id: str | None = None,
    platform: str = "web",
    namespace: str | None = None,
    struct: StructFields | None = None,
    event_id: str | None = None,
    timestamp_ms: int | None = None,
) -> str:
    """The tp1 GET URL of one pixel event (see the module docstring for what is, and is not, baked in)."""
    if not page_url:
        raise ValueError("the page URL is required")
    if event_id is not None:
        event_id = str(uuid.UUID(event_id))
    pairs: dict[str, str | None] = {
        "e": "se" if struct is not None else "pv",
        "eid": event_id,
        "dtm": None if timestamp_ms is None else str(int(timestamp_ms)),
        "url": page_url,
        "page": page_title,
        "aid": app_id,
        "tna": namespace,
        "p": platform,
        "tv": PIXEL_TRACKER_VERSION,
    }
    query = [(name, value) for name, value in pairs.items() if value]
    if struct is not None:
        query += list(struct.parameters().items())
    return collector_base(collector) + GET_PATH + "?" + urlencode(query, quote_via=quote, safe="")


def img_tag(url: str) -> str:
    """An invisible 1x1 `<img>` for the URL, HTML-escaped (`&` → `&amp;` in the attribute)."""
    return f'<img src="{html.escape(url, quote=True)}" width="1" height="1" alt="" style="border:0">'
