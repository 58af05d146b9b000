"""The Snowplow Micro compatible API (spec/protocol.md §5): /micro/all, /micro/good, /micro/bad, /micro/reset,
and the reset watermark that the paged API (micro_paged.py) counts from too.

Micro keeps events in memory and `/micro/reset` empties it. Plowline keeps history permanently, so
reset does not delete anything: it moves a watermark, kept per data directory in
DATA_DIR/micro-reset.json, and the other endpoints count only what came in after it:

* a good event counts when its `collector_tstamp` is at or after the watermark (so an event the
  collector received before the reset stays out even if it is loaded after);
* a bad row counts when its failure time (`loaded_at` if it has none) is at or after it.

Differences from Micro that a test may meet: events appear once the pipeline has enriched and
loaded them (typically within a second under `plowline up`), not at the moment the collector
answers, so a test should poll `/micro/all` until the count it expects is there, as Micro's own
docs suggest for asynchronous trackers. `incomplete` is always false and `/micro/good` never holds
incomplete events: Plowline's enrich emits a bad row for an event that fails validation. The
newer paged API (`/micro/events`, `/micro/timeline`, `/micro/columns`, `/micro/columnStats`) is in
micro_paged.py. The reset answer is Micro 4's plain `Reset completed`. Before
the first reset the watermark is the epoch, so `/micro/good` would return the data directory's
whole history: reset at the start of a test run, as Micro users already do.

GoodEvent.rawEvent is rebuilt from the enriched event, as only the enriched event is stored:
`parameters` holds the tracker-protocol parameters that map one to one onto enriched fields
(`e`, `eid`, `aid`, `p`, `tv`, `url`, `co`, `ue_pr`, …) with the values as enriched (so after
enrichments such as IP anonymisation, and timestamps in epoch milliseconds); `context` holds the
collector time, IP, user agent and network user id; `api`, `contentType`, `source.hostname`,
`context.refererUri` and `context.headers` are not stored and are null or empty.

BadEvent: `errors` is Micro's human line followed by the compact bad-row JSON; `collectorPayload`
and `rawEvent` come from the bad row's payload when it carries one (adapter and tracker protocol
failures carry the collector payload; schema and enrichment failures the raw event, whose
parameters stand in for the querystring), else null.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from plowline.analytics.dashboard.warehouse import (
    EVENT_COLUMNS,
    Runner,
    event_from_row,
    event_schema,
    schema_condition,
    sql_string,
    sql_timestamp,
)
from plowline.config import Settings
from plowline.event import EnrichedEvent

__all__ = [
    "MicroStore",
    "bad_event",
    "good_event",
    "raw_parameters",
]

_RESET_FILE = "micro-reset.json"
_EPOCH = datetime(1970, 1, 1)

# Enriched `event` → tracker protocol `e`.
_EVENT_CODES = {
    "page_view": "pv", "page_ping": "pp", "struct": "se", "unstruct": "ue",
    "transaction": "tr", "transaction_item": "ti",
}
# Tracker protocol parameter → the enriched field it fills unchanged (spec/protocol.md §1.4).
_PARAMETER_FIELDS: tuple[tuple[str, str], ...] = (
    ("eid", "event_id"), ("aid", "app_id"), ("p", "platform"), ("tna", "name_tracker"), ("tv", "v_tracker"),
    ("uid", "user_id"), ("duid", "domain_userid"), ("vid", "domain_sessionidx"), ("sid", "domain_sessionid"),
    ("tnuid", "network_userid"), ("fp", "user_fingerprint"), ("ip", "user_ipaddress"), ("ua", "useragent"),
    ("url", "page_url"), ("page", "page_title"), ("refr", "page_referrer"), ("lang", "br_lang"),
    ("cookie", "br_cookies"), ("cd", "br_colordepth"), ("tz", "os_timezone"), ("cs", "doc_charset"),
    ("se_ca", "se_category"), ("se_ac", "se_action"), ("se_la", "se_label"), ("se_pr", "se_property"),
    ("se_va", "se_value"), ("tr_id", "tr_orderid"), ("tr_af", "tr_affiliation"), ("tr_tt", "tr_total"),
    ("tr_tx", "tr_tax"), ("tr_sh", "tr_shipping"), ("tr_ci", "tr_city"), ("tr_st", "tr_state"),
    ("tr_co", "tr_country"), ("tr_cu", "tr_currency"), ("ti_id", "ti_orderid"), ("ti_sk", "ti_sku"),
    ("ti_nm", "ti_name"), ("ti_ca", "ti_category"), ("ti_pr", "ti_price"), ("ti_qu", "ti_quantity"),
    ("ti_cu", "ti_currency"), ("pp_mix", "pp_xoffset_min"), ("pp_max", "pp_xoffset_max"),
    ("pp_miy", "pp_yoffset_min"), ("pp_may", "pp_yoffset_max"), ("dtm", "dvce_created_tstamp"),
    ("stm", "dvce_sent_tstamp"), ("ttm", "true_tstamp"), ("refr_dtm", "refr_dvce_tstamp"),
    ("refr_duid", "refr_domain_userid"),
)
_SIZES = (("res", "dvce_screenwidth", "dvce_screenheight"), ("vp", "br_viewwidth", "br_viewheight"),
          ("ds", "doc_width", "doc_height"))
_PAYLOAD_KEYS = ("api", "querystring", "contentType", "body", "source", "context")
_RAW_EVENT_KEYS = ("api", "parameters", "contentType", "source", "context")
_BAD_LINES = {
    "schema_violations": "Error while validating the event.",
    "enrichment_failures": "Error while validating the event.",
    "adapter_failures": "Error while extracting event(s) from collector payload and validating it/them.",
    "tracker_protocol_violations": "Error while extracting event(s) from collector payload and validating it/them.",
    "collector_payload_format_violation": "Can't deserialize Thrift bytes.",
    "size_violation": "Collector payload is too large.",
}


def _parameter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return str(round(value.timestamp() * 1000))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def raw_parameters(event: EnrichedEvent) -> dict[str, str]:
    """The tracker-protocol parameters that can be read back from an enriched event (see the module docstring)."""
    parameters: dict[str, str] = {}
    if event.event is not None:
        parameters["e"] = _EVENT_CODES.get(event.event, event.event)
    for parameter, name in _PARAMETER_FIELDS:
        value = getattr(event, name)
        if value is not None:
            parameters[parameter] = _parameter_value(value)
    for parameter, width, height in _SIZES:
        if getattr(event, width) is not None and getattr(event, height) is not None:
            parameters[parameter] = f"{getattr(event, width)}x{getattr(event, height)}"
    if event.contexts:
        parameters["co"] = orjson.dumps(
            {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": event.contexts}
        ).decode()
    if event.unstruct_event:
        parameters["ue_pr"] = orjson.dumps(
            {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
             "data": event.unstruct_event}
        ).decode()
    return parameters


def good_event(event: EnrichedEvent) -> dict[str, Any]:
    """Micro's GoodEvent for one enriched event."""
    contexts = [str(entity["schema"]) for entity in (event.contexts or []) + (event.derived_contexts or [])]
    collector_ms = None if event.collector_tstamp is None else round(event.collector_tstamp.timestamp() * 1000)
    return {
        "rawEvent": {
            "api": None,
            "parameters": raw_parameters(event),
            "contentType": None,
            "source": {"name": event.v_collector, "encoding": "UTF-8", "hostname": None},
            "context": {
                "timestamp": collector_ms,
                "ipAddress": event.user_ipaddress,
                "useragent": event.useragent,
                "refererUri": None,
                "headers": [],
                "userId": event.network_userid,
            },
        },
        "eventType": event.event,
        "schema": event_schema(event),
        "contexts": contexts,
        "event": event.to_json(),
        "incomplete": False,
    }


def _payload_parts(payload: dict[str, Any], parameters_key: str) -> dict[str, Any]:
    """Micro's CollectorPayload/RawEvent shape from a badrows CollectorPayload or RawEvent JSON."""
    pairs = payload.get(parameters_key) or []
    return {
        "api": {"vendor": payload.get("vendor"), "version": payload.get("version")},
        "querystring": pairs,
        "parameters": {pair.get("name"): pair.get("value") for pair in pairs if isinstance(pair, dict)},
        "contentType": payload.get("contentType"),
        "body": payload.get("body"),
        "source": {
            "name": payload.get("collector", payload.get("loaderName")),
            "encoding": payload.get("encoding"),
            "hostname": payload.get("hostname"),
        },
        "context": {
            "timestamp": payload.get("timestamp"),
            "ipAddress": payload.get("ipAddress"),
            "useragent": payload.get("useragent"),
            "refererUri": payload.get("refererUri"),
            "headers": payload.get("headers") or [],
            "userId": payload.get("networkUserId", payload.get("userId")),
        },
    }


def bad_event(row: dict[str, Any]) -> dict[str, Any]:
    """Micro's BadEvent for one self-describing bad row."""
    schema = str(row.get("schema", ""))
    kind = schema.split("/")[1] if schema.count("/") >= 3 else schema
    data = row.get("data") if isinstance(row.get("data"), dict) else {}
    payload = data.get("payload") if isinstance(data, dict) else None
    collector_payload: dict[str, Any] | None = None
    raw_event: dict[str, Any] | None = None
    if isinstance(payload, dict) and "querystring" in payload:  # adapter / tracker protocol failures
        parts = _payload_parts(payload, "querystring")
        collector_payload = {key: parts[key] for key in _PAYLOAD_KEYS}
    elif isinstance(payload, dict) and isinstance(payload.get("raw"), dict):  # schema / enrichment failures
        parts = _payload_parts(payload["raw"], "parameters")
        collector_payload = {key: parts[key] for key in _PAYLOAD_KEYS}
        raw_event = {key: parts[key] for key in _RAW_EVENT_KEYS}
    line = _BAD_LINES.get(kind, "Error while processing the collector payload.")
    return {"collectorPayload": collector_payload, "rawEvent": raw_event,
            "errors": [line, orjson.dumps(row).decode()]}


class MicroStore:
    """Micro's view of the warehouse: what came in since the last reset."""

    def __init__(self, settings: Settings, run: Runner, now: Callable[[], datetime] | None = None) -> None:
        self._run = run
        self._reset_path = Path(settings.data_dir) / _RESET_FILE
        self._now = now or (lambda: datetime.now(UTC).replace(tzinfo=None))

    def since(self) -> datetime:
        """The watermark (naive UTC); the epoch when never reset."""
        try:
            text = orjson.loads(self._reset_path.read_bytes())["since"]
            return datetime.fromisoformat(text)
        except (FileNotFoundError, KeyError, ValueError, TypeError, orjson.JSONDecodeError):
            return _EPOCH

    def reset(self) -> datetime:
        """Move the watermark to now (written atomically: other collector workers read the file)."""
        moment = self._now()
        self._reset_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._reset_path.with_name(f".{_RESET_FILE}.{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps({"since": moment.isoformat()}))
        temporary.replace(self._reset_path)
        return moment

    def counts(self) -> dict[str, int]:
        since = sql_timestamp(self.since())
        row = self._run(
            f"SELECT (SELECT count(*) FROM atomic.events WHERE collector_tstamp >= {since}) AS good, "
            f"(SELECT count(*) FROM atomic.bad_rows WHERE COALESCE(failure_tstamp, loaded_at) >= {since}) AS bad"
        ).to_pylist()[0]
        good, bad = int(row["good"]), int(row["bad"])
        return {"total": good + bad, "good": good, "bad": bad}

    def good(self, event_type: str | None = None, schema: str | None = None,
             contexts: list[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """GoodEvents, newest first, filtered as POST /micro/good filters them."""
        # event_type, schema and (without a contexts filter) limit are applied in SQL, so a filtered
        # question on a long history does not turn every stored event into JSON.
        where = [f"collector_tstamp >= {sql_timestamp(self.since())}"]
        if event_type is not None:
            where.append(f"event = {sql_string(event_type)}")
        if schema is not None:
            where.append(schema_condition(schema))
        top = f" LIMIT {int(limit)}" if limit is not None and not contexts else ""
        rows = self._run(
            f"SELECT {EVENT_COLUMNS} FROM atomic.events WHERE {' AND '.join(where)} "
            f"ORDER BY collector_tstamp DESC, load_tstamp DESC{top}"
        ).to_pylist()
        out: list[dict[str, Any]] = []
        wanted = set(contexts or [])
        for row in rows:
            item = good_event(event_from_row(row))
            if event_type is not None and item["eventType"] != event_type:
                continue
            if schema is not None and item["schema"] != schema:
                continue
            if wanted and not wanted <= set(item["contexts"]):
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    def bad(self, vendor: str | None = None, version: str | None = None,
            limit: int | None = None) -> list[dict[str, Any]]:
        """BadEvents, newest first, filtered by the collector payload's api vendor/version."""
        since = sql_timestamp(self.since())
        top = f" LIMIT {int(limit)}" if limit is not None and vendor is None and version is None else ""
        rows = self._run(
            "SELECT CAST(data AS VARCHAR) AS data FROM atomic.bad_rows "
            f"WHERE COALESCE(failure_tstamp, loaded_at) >= {since} "
            f"ORDER BY COALESCE(failure_tstamp, loaded_at) DESC, row_hash{top}"
        ).to_pylist()
        out: list[dict[str, Any]] = []
        for row in rows:
            item = bad_event(orjson.loads(row["data"]))
            api = (item["collectorPayload"] or {}).get("api") or {}
            if vendor is not None and api.get("vendor") != vendor:
                continue
            if version is not None and api.get("version") != version:
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out
