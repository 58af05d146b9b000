"""Enrich's floor in Python: the events/s of only the work no enrich can skip, on the benchmark's own mix.

    .venv/bin/python bench/enrich_floor.py            # about a minute
    .venv/bin/python bench/enrich_floor.py --records 20000 --rounds 3

`bench/enrich_throughput.py` measures Plowline's enrich. This script asks a different question:
how fast can *any* Python enrich go on this machine, if it did nothing but what the formats and
the protocol force on it? Over the same generated records (same generator, same seed), each pass
does, with the fastest libraries there are:

1. decode the Thrift CollectorPayload (thriftpy2's Cython protocol, as Plowline does);
2. read the events: `orjson.loads` of a POST body, `parse_qsl` of a GET querystring;
3. per event, decode `cx` and `ue_px` (base64url + `orjson.loads`), and validate every entity and
   the unstruct event with jsonschema-rs (compiled once per schema, `is_valid` only: no error
   reports), plus one derived entity, as the default enrichments add `ua_parser_context`;
4. per event, fill a 131-slot row from the tracker parameters by a precomputed table, write
   contexts and unstruct back as JSON text, and join the row into a TSV line.

No enrichment runs, no field is converted or checked (timestamps, numbers, lengths), no URL is
parsed, no bad row is built, nothing is written anywhere. So the figure is an upper bound: a real
enrich does all of this and more. It prints events per CPU-second, the figure the enrich target
(20,000 events/s per core) is stated in.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import machine_facts
from enrich_throughput import DEFAULT_IGLU, RESULTS_DIR, Generator, build_pipeline, write_resolver_config

from plowline.errors import PayloadDecodeError
from plowline.event import FIELD_NAMES
from plowline.iglu.errors import ResolutionError
from plowline.payload import CollectorPayload
from plowline.schema_key import SchemaKey

# Tracker parameter → enriched field, for the parameters the generated events carry.
PARAMETER_FIELDS = {
    "e": "event", "eid": "event_id", "aid": "app_id", "p": "platform", "tv": "v_tracker", "duid": "domain_userid",
    "vid": "domain_sessionidx", "sid": "domain_sessionid", "uid": "user_id", "url": "page_url",
    "page": "page_title", "refr": "page_referrer", "dtm": "dvce_created_tstamp", "stm": "dvce_sent_tstamp",
    "tz": "os_timezone", "lang": "br_lang", "cs": "doc_charset", "res": "dvce_screenwidth",
    "vp": "br_viewwidth", "ds": "doc_width", "cd": "br_colordepth", "cookie": "br_cookies",
    "se_ca": "se_category", "se_ac": "se_action", "se_la": "se_label", "se_pr": "se_property",
    "se_va": "se_value", "pp_mix": "pp_xoffset_min", "pp_max": "pp_xoffset_max", "pp_miy": "pp_yoffset_min",
    "pp_may": "pp_yoffset_max",
}
UA_CONTEXT_SCHEMA = "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0"
UA_CONTEXT = {
    "useragentFamily": "Chrome", "useragentMajor": "124", "useragentMinor": "0", "useragentPatch": "6367",
    "useragentVersion": "Chrome 124.0.6367", "osFamily": "Windows", "osMajor": "10", "osMinor": None,
    "osPatch": None, "osPatchMinor": None, "osVersion": "Windows 10", "deviceFamily": "Other",
}


class Floor:
    """The unavoidable work, written as tightly as Python allows."""

    def __init__(self, resolver: Any) -> None:
        self.resolver = resolver
        self.validators: dict[str, Any] = {}
        index = {name: i for i, name in enumerate(FIELD_NAMES)}
        self.slots = {param: index[name] for param, name in PARAMETER_FIELDS.items()}
        self.contexts_slot = index["contexts"]
        self.unstruct_slot = index["unstruct_event"]
        self.derived_slot = index["derived_contexts"]

    def validator(self, uri: str) -> Any:
        try:
            return self.validators[uri]
        except KeyError:
            pass
        try:
            validator = jsonschema_rs.Draft4Validator(self.resolver.lookup(SchemaKey.parse(uri)))
        except (ResolutionError, ValueError):  # the mix's unknown schemas: their events are bad
            validator = None
        self.validators[uri] = validator
        return validator

    def valid(self, entity: dict[str, Any]) -> bool:
        validator = self.validator(entity["schema"])
        return validator is not None and bool(validator.is_valid(entity["data"]))

    def record(self, record: bytes) -> list[str | None]:
        try:
            payload = CollectorPayload.from_thrift(record)
            events = orjson.loads(payload.body)["data"] if payload.body else None
        except (ValueError, KeyError, TypeError, PayloadDecodeError):  # broken records of the mix
            return [None]
        if events is None:
            events = [dict(parse_qsl(payload.querystring or ""))]
        return [self.event(event) for event in events]

    def event(self, params: dict[str, str]) -> str | None:
        try:
            return self._event(params)
        except (ValueError, KeyError, TypeError):  # the mix's ~1% of broken events: no row, no bad row
            return None

    def _event(self, params: dict[str, str]) -> str:
        row: list[Any] = [None] * 131
        slots = self.slots
        for name, value in params.items():
            slot = slots.get(name)
            if slot is not None:
                row[slot] = value
        ok = True
        cx = params.get("cx")
        if cx:
            contexts = orjson.loads(base64.urlsafe_b64decode(cx + "=" * (-len(cx) % 4)))["data"]
            for entity in contexts:
                ok = self.valid(entity) and ok
            row[self.contexts_slot] = orjson.dumps(contexts).decode()
        ue = params.get("ue_px")
        if ue:
            unstruct = orjson.loads(base64.urlsafe_b64decode(ue + "=" * (-len(ue) % 4)))["data"]
            ok = self.valid(unstruct) and ok
            row[self.unstruct_slot] = orjson.dumps(unstruct).decode()
        derived = {"schema": UA_CONTEXT_SCHEMA, "data": UA_CONTEXT}
        ok = self.valid(derived) and ok
        row[self.derived_slot] = orjson.dumps([derived]).decode()
        return "\t".join(["" if value is None else value for value in row])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iglu", type=Path, default=DEFAULT_IGLU)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plowline-enrich-floor-") as tmp:
        resolver_config = Path(tmp) / "resolver.json"
        write_resolver_config(resolver_config)
        # Plowline's own resolver (embedded + iglu-central on disk) only hands the schemas over.
        resolver = build_pipeline(resolver_config, args.iglu, Path(tmp) / "data").resolver
        records, _ = Generator(args.seed).records(args.records)
        floor = Floor(resolver)
        events = sum(len(floor.record(record)) for record in records)  # warm: compile every schema
        rates = []
        for _ in range(args.rounds):
            cpu0 = time.process_time()
            for record in records:
                floor.record(record)
            rates.append(events / (time.process_time() - cpu0))
    rate = statistics.median(rates)
    print(f"{len(records):,} records, {events:,} events; floor passes: " + ", ".join(f"{r:,.0f}" for r in rates))
    print(f"floor: {rate:,.0f} events per CPU-second ({1e6 / rate:.1f} µs per event); enrich target 20,000")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"enrich_floor-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"records": len(records), "events": events, "events_per_cpu_s": rates,
                               "median": rate, "machine": machine_facts()}, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
