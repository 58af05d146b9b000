#!/usr/bin/env python3
"""Enrich benchmark: enriched events/s per core with the default enrichment set.

    .venv/bin/python bench/enrich_throughput.py             # the whole run, about 1.5-2.5 minutes
    .venv/bin/python bench/enrich_throughput.py --help
    .venv/bin/python bench/enrich_throughput.py --profile   # cProfile of the single-process path only
    py-spy record -f raw -o enrich.collapsed -- .venv/bin/python bench/enrich_throughput.py --only single --seconds 25

On a generated mix of raw records that looks like a website's traffic (Thrift CollectorPayloads as
Plowline's collector writes them: mostly POST tp2 batches of 1-10 JS-tracker events, some GET /i
pixels; page views and page pings with the web_page context, structured events, ~20% self-describing
events with 1-2 contexts; ~50 browser User-Agents and ~1000 IPs reused with Zipf-like weights;
UTM-tagged landing pages and external referrers in a share; ~1% bad events), it measures:

1. one process: `plowline.enrich.worker.process_batch` (enrich + TSV serialisation, what a worker
   runs per batch) in-process over pre-built records, in batches of 500, warm caches; events/s of
   wall time and events per CPU-second (the per-core figure), median of 3 passes;
2. scaling: 1 and 2 worker processes (multiprocessing, spawn), each with its own pipeline and its
   share of the records, started together: aggregate events/s and events/s per core;
3. peak memory per worker: the peak RSS of each worker process, read as VmHWM from /proc/self/status
   (not ru_maxrss, which Linux carries over from the forking parent across exec; not tracemalloc,
   which sees Python allocations only), and VmHWM of the `plowline enrich` process in 4.;
4. the real `plowline enrich --workers 1` on the file log: the records are written to
   DATA_DIR/streams/raw with FileLogSink, the worker runs as a subprocess and is timed until every
   enriched event and bad row is in DATA_DIR/streams/{enriched,bad} (fsynced), then stopped.

Before each measurement it waits (up to --quiet-wait s) for the rest of the machine to use less than
15% of a core, and reports what other processes used meanwhile. Checks (exit 1 if one fails): every
injected bad event or record gives exactly one bad row and nothing else does; every run enriches the
same events; `plowline enrich` writes exactly the expected enriched and bad records.

Iglu: the embedded schemas and /work/shared/iglu-central (--iglu), with a resolver config that has
no HTTP repository, so nothing touches the network. Figures are printed as a table and written as
JSON to bench/results/. Method and results: BENCHMARKS.md ("## Enrich").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import math
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from benchlib import machine_facts

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS_DIR = BENCH / "results"
UA_FILE = BENCH / "enrich_user_agents.txt"
DEFAULT_IGLU = Path("/work/shared/iglu-central")
PLOWLINE_BIN = Path(sys.executable).parent / "plowline"
TARGET_PER_CORE = 20_000
QUIET_PCT = 15.0  # other processes' CPU, in % of one core, above which a measurement is flagged as noisy
CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH_RECORDS = 500  # records per process_batch call: enrich.batch_size's default

# ---------------------------------------------------------------------------------------------
# The traffic: what browsers running Snowplow's JavaScript tracker (v3) send to the collector.
# ---------------------------------------------------------------------------------------------

COLLECTOR_HOST = "c.shop-example.com"
COLLECTOR_NAME = "plowline-0.1.0-file"
SITE = "https://www.shop-example.com"
TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
SDJ = "iglu:com.snowplowanalytics.snowplow/{}/jsonschema/{}"
CONTEXTS = SDJ.format("contexts", "1-0-0")
UNSTRUCT = SDJ.format("unstruct_event", "1-0-0")
PAYLOAD_DATA = SDJ.format("payload_data", "1-0-4")

PAGES = [
    ("/", "Shop Example \u2013 Outdoor gear"),
    ("/products/trail-running-shoes?colour=blue&size=42", "Trail Running Shoes \u2013 Men's | Shop Example"),
    ("/products/merino-base-layer", "Merino Base Layer | Shop Example"),
    ("/category/outdoor/jackets?page=2", "Outdoor Jackets \u2013 Page 2 | Shop Example"),
    ("/category/footwear", "Footwear | Shop Example"),
    ("/cart", "Your basket (3 items) | Shop Example"),
    ("/checkout/shipping", "Checkout \u2013 Shipping | Shop Example"),
    ("/blog/choosing-hiking-boots", "How to choose hiking boots | Shop Example"),
    ("/de/produkte/wanderschuhe-gr\u00f6\u00dfe-43", "Wanderschuhe Gr\u00f6\u00dfe 43 | Shop Example"),
    ("/search?q=waterproof+socks", "Search: \u201cwaterproof socks\u201d | Shop Example"),
]
# Landing pages tagged for campaign attribution (utm_* and click ids), with the referrer they come from.
CAMPAIGNS = [
    ({"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_sale_2024", "utm_term": "trail shoes",
      "gclid": "Cj0KCQjw{n}BhD_ARIsAB"}, "https://www.google.com/"),
    ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly-{n}",
      "utm_content": "hero_button"}, ""),
    ({"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": "retargeting_q2",
      "utm_content": "carousel_{n}"}, "https://l.facebook.com/"),
    ({"utm_source": "bing", "utm_medium": "cpc", "utm_campaign": "brand", "msclkid": "7c{n}e0f1a2b3"},
     "https://www.bing.com/"),
    ({"utm_source": "partner-blog", "utm_medium": "referral", "utm_campaign": "hiking_guide"},
     "https://www.outdoor-blog.example/best-boots-2024"),
]
SEARCH_REFERRERS = [
    "https://www.google.com/", "https://www.google.de/", "https://www.google.co.uk/search?q=hiking+boots+waterproof",
    "https://www.bing.com/search?q=trail+running+shoes&form=QBLH", "https://duckduckgo.com/",
    "https://search.yahoo.com/search?p=merino+base+layer", "https://www.ecosia.org/search?q=outdoor+jacket",
]
SOCIAL_REFERRERS = [
    "https://t.co/", "https://www.facebook.com/", "https://www.instagram.com/",
    "https://www.reddit.com/r/trailrunning/comments/1c2x3y4/new_shoes/", "https://www.pinterest.com/",
    "https://www.youtube.com/",
]
RESOLUTIONS = [
    ("1920x1080", "1903x969", "1903x5230"), ("2560x1440", "2543x1289", "2543x4120"),
    ("1366x768", "1366x657", "1351x6802"), ("390x844", "390x664", "390x9120"), ("414x896", "414x715", "414x8450"),
]
TIMEZONES = ["Europe/Berlin", "Europe/London", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Australia/Sydney"]
LANGS = [("en-US", "en-US,en;q=0.9"), ("de-DE", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"), ("en-GB", "en-GB,en;q=0.9"),
         ("fr-FR", "fr-FR,fr;q=0.9,en;q=0.8")]
SAFE = "-_.!~*'()"  # what encodeURIComponent leaves as it is
LB_IP = "10.0.3.17"  # the load balancer in front of the collector, for requests with X-Forwarded-For

# Record kinds: share of records. POST batch sizes: (events, weight), mean ≈ 3.5 events per POST.
GET_SHARE = 0.12
POST_BATCH_SIZES = [(1, 35), (2, 20), (3, 15), (5, 15), (10, 15)]
# Events in POST batches (the JS tracker's own mix). GET pixels are pv / pp / se.
POST_EVENT_KINDS = [("pv", 25), ("pp", 37), ("se", 18), ("ue", 20)]
GET_EVENT_KINDS = [("pv", 50), ("pp", 30), ("se", 20)]
# Self-describing events: schema (in iglu-central), weight.
UE_KINDS = [("link_click", 55), ("site_search", 15), ("add_to_cart", 15), ("submit_form", 15)]
BAD_EVENT_SHARE = 0.0095  # events made invalid in one of BAD_KINDS' ways
BAD_KINDS = ["ue_missing_required", "context_invalid", "unknown_schema", "atomic_parse_error", "invalid_json"]
BAD_RECORD_SHARE = 0.002  # whole records that are not a payload, or a tp2 body that is not JSON


class Zipf:
    """Draw indexes 0..n-1 with weights 1/(rank+1)^s."""

    def __init__(self, n: int, s: float) -> None:
        self.cum = list(accumulate(1 / (k + 1) ** s for k in range(n)))

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect(self.cum, rng.random() * self.cum[-1])


def weighted(rng: random.Random, choices: list[tuple[Any, int]]) -> Any:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def rand_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def load_user_agents() -> list[str]:
    lines = UA_FILE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def ip_pool(rng: random.Random, n: int) -> list[str]:
    ips: set[str] = set()
    while len(ips) < n:
        if rng.random() < 0.05:
            a, b, c, d = (rng.randint(1, 0xFFFF) for _ in range(4))
            ips.add(f"2a02:{a:x}:{b:x}:{c:x}::{d:x}")
        else:
            first = rng.choice([31, 46, 62, 77, 81, 84, 86, 89, 90, 92, 109, 151, 176, 185, 188, 193, 212, 217])
            ips.add(f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    pool = sorted(ips)  # a set's order depends on PYTHONHASHSEED: sort, then shuffle with the seeded rng
    rng.shuffle(pool)
    return pool


class Generator:
    """Deterministic (seeded) raw records, with tallies of what went in."""

    def __init__(self, seed: int, base_ms: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.user_agents = load_user_agents()
        self.ua_zipf = Zipf(len(self.user_agents), 1.1)
        self.ips = ip_pool(self.rng, 1000)
        self.ip_zipf = Zipf(len(self.ips), 0.8)
        # collector timestamps from an hour ago on, 7 ms apart
        self.base_ms = int(time.time() * 1000) - 3_600_000 if base_ms is None else base_ms
        self.tally: Counter[str] = Counter()
        self.get_style = False

    # -- one visit's setting ---------------------------------------------------------------------

    def visit(self) -> dict[str, Any]:
        rng = self.rng
        path, title = rng.choice(PAGES)
        url = SITE + path
        scenario = rng.random()
        if scenario < 0.25:  # campaign landing page
            params, refr = rng.choice(CAMPAIGNS)
            n = str(rng.randint(1, 99))
            query = urlencode({k: v.replace("{n}", n) for k, v in params.items()}, quote_via=quote)
            url += ("&" if "?" in url else "?") + query
            self.tally["visit_campaign"] += 1
        elif scenario < 0.40:
            refr = rng.choice(SEARCH_REFERRERS)
            self.tally["visit_search"] += 1
        elif scenario < 0.50:
            refr = rng.choice(SOCIAL_REFERRERS)
            self.tally["visit_social"] += 1
        elif scenario < 0.90:
            refr = SITE + rng.choice(PAGES)[0]
            self.tally["visit_internal"] += 1
        else:
            refr = ""
            self.tally["visit_direct"] += 1
        return {
            "ua": self.user_agents[self.ua_zipf.draw(rng)],
            "ip": self.ips[self.ip_zipf.draw(rng)],
            "nuid": rand_uuid(rng),
            "duid": rand_uuid(rng),
            "sid": rand_uuid(rng),
            "vid": rng.randint(1, 40),
            "url": url,
            "title": title,
            "refr": refr,
            "screen": rng.choice(RESOLUTIONS),
            "tz": rng.choice(TIMEZONES),
            "lang": rng.choice(LANGS),
            "page_view_id": rand_uuid(rng),
            "uid": f"user-{rng.randint(1, 50_000)}" if rng.random() < 0.15 else None,
            "via_lb": rng.random() < 0.5,
        }

    # -- events ------------------------------------------------------------------------------------

    def ue_data(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        if kind == "link_click":
            data: dict[str, Any] = {"targetUrl": SITE + rng.choice(PAGES)[0]}
            if rng.random() < 0.7:
                data.update(elementId=f"nav-link-{rng.randint(1, 30)}", elementClasses=["nav-link", "btn"],
                            elementContent="Shop now")
            return data
        if kind == "site_search":
            return {"terms": rng.sample(["waterproof", "socks", "boots", "merino", "trail", "jacket", "kids"], 2),
                    "filters": {"size": "42", "inStock": True}, "totalResults": rng.randint(0, 400),
                    "pageResults": 24}
        if kind == "add_to_cart":
            return {"sku": f"SKU-{rng.randint(10000, 99999)}", "name": "Trail Running Shoes", "category": "footwear",
                    "unitPrice": round(rng.uniform(9, 240), 2), "quantity": rng.randint(1, 3), "currency": "EUR"}
        return {"formId": "newsletter-signup", "formClasses": ["form", "footer-form"],
                "elements": [{"name": "email", "value": "someone@example.com", "nodeName": "INPUT", "type": "email"},
                             {"name": "consent", "value": "on", "nodeName": "INPUT", "type": "checkbox"}]}

    def second_context(self, v: dict[str, Any], now_ms: int) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.5:
            return {"schema": SDJ.format("client_session", "1-0-2"),
                    "data": {"userId": v["duid"], "sessionId": v["sid"], "sessionIndex": v["vid"],
                             "eventIndex": rng.randint(1, 60), "previousSessionId": None,
                             "storageMechanism": "COOKIE_1", "firstEventId": rand_uuid(rng),
                             "firstEventTimestamp": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(
                                 timespec="milliseconds").replace("+00:00", "Z")}}
        start = now_ms - rng.randint(2000, 9000)
        marks = ["fetchStart", "domainLookupStart", "domainLookupEnd", "connectStart", "connectEnd", "requestStart",
                 "responseStart", "responseEnd", "domLoading", "domInteractive", "domContentLoadedEventStart",
                 "domContentLoadedEventEnd", "domComplete", "loadEventStart", "loadEventEnd"]
        timing: dict[str, Any] = {"navigationStart": start, "redirectStart": 0, "redirectEnd": 0,
                                  "unloadEventStart": 0, "unloadEventEnd": 0, "secureConnectionStart": start + 30}
        t = start
        for mark in marks:
            t += rng.randint(0, 120)
            timing[mark] = t
        return {"schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0", "data": timing}

    def event(self, kind: str, v: dict[str, Any], now_ms: int, bad: str | None) -> dict[str, str]:
        rng = self.rng
        screen, lang = v["screen"], v["lang"]
        ev = {
            "e": kind, "eid": rand_uuid(rng), "tv": "js-3.24.2", "tna": "sp", "aid": "shop-web", "p": "web",
            "cookie": "1", "cs": "UTF-8", "lang": lang[0], "res": screen[0], "cd": "24", "tz": v["tz"],
            "dtm": str(now_ms - rng.randint(20, 4000)), "vp": screen[1], "ds": screen[2], "vid": str(v["vid"]),
            "sid": v["sid"], "duid": v["duid"], "url": v["url"],
        }
        if v["uid"]:
            ev["uid"] = v["uid"]
        if v["refr"]:
            ev["refr"] = v["refr"]
        if kind == "pv":
            ev["page"] = v["title"]
        elif kind == "pp":
            ev.update(page=v["title"], pp_mix="0", pp_max=str(rng.randint(0, 40)), pp_miy="0",
                      pp_may=str(rng.randint(100, 6000)))
        elif kind == "se":
            ev.update(se_ca="basket", se_ac=rng.choice(["add", "remove", "view"]),
                      se_la=f"sku-{rng.randint(10000, 99999)}", se_pr="size-42", se_va="89.95")
        contexts = [{"schema": SDJ.format("web_page", "1-0-0"), "data": {"id": v["page_view_id"]}}]
        unstruct = None
        if kind == "ue":
            ue_kind = weighted(rng, UE_KINDS)
            self.tally[f"ue_{ue_kind}"] += 1
            unstruct = {"schema": SDJ.format(ue_kind, "1-0-1" if ue_kind == "link_click" else "1-0-0"),
                        "data": self.ue_data(ue_kind)}
            if rng.random() < 0.5:
                contexts.append(self.second_context(v, now_ms))
        # ~1% made invalid, each in one way that enrich must turn into a bad row.
        if bad == "ue_missing_required":
            unstruct = {"schema": SDJ.format("link_click", "1-0-1"), "data": {"elementId": "no-target"}}
            ev["e"] = "ue"
        elif bad == "unknown_schema":
            unstruct = {"schema": "iglu:com.shop-example/checkout_step/jsonschema/1-0-0", "data": {"step": 2}}
            ev["e"] = "ue"
        elif bad == "context_invalid":
            contexts[0] = {"schema": SDJ.format("web_page", "1-0-0"), "data": {"id": "not-a-uuid"}}
        elif bad == "atomic_parse_error":
            ev["vid"] = "first"
        self.tally[f"events_{ev['e']}"] += 1
        self.tally[f"events_with_{len(contexts)}_contexts"] += 1
        context_json = json.dumps({"schema": CONTEXTS, "data": contexts}, separators=(",", ":"))
        unstruct_json = None
        if unstruct is not None:
            unstruct_json = json.dumps({"schema": UNSTRUCT, "data": unstruct}, separators=(",", ":"))
        if bad == "invalid_json":
            context_json = context_json[:-7]
        if self.get_style:  # GET: base64url, as the tracker's default encodeBase64 does
            ev["cx"] = base64.urlsafe_b64encode(context_json.encode()).decode().rstrip("=")
            if unstruct_json is not None:
                ev["ue_px"] = base64.urlsafe_b64encode(unstruct_json.encode()).decode().rstrip("=")
        else:
            ev["co"] = context_json
            if unstruct_json is not None:
                ev["ue_pr"] = unstruct_json
        ev["stm"] = str(now_ms - rng.randint(2, 40))
        return ev

    def bad_kind(self) -> str | None:
        if self.rng.random() >= BAD_EVENT_SHARE:
            return None
        kind = self.rng.choice(BAD_KINDS)
        self.tally["bad_events_injected"] += 1
        self.tally[f"bad_{kind}"] += 1
        return kind

    # -- records -----------------------------------------------------------------------------------

    def headers(self, v: dict[str, Any], *, post: bool, body_len: int = 0) -> list[str]:
        h = [f"Host: {COLLECTOR_HOST}", "Connection: keep-alive"]
        if post:
            h.append(f"Content-Length: {body_len}")
        h.append(f"User-Agent: {v['ua']}")
        if post:
            h += ["Accept: */*", f"Origin: {SITE}", "Sec-Fetch-Site: same-site", "Sec-Fetch-Mode: cors",
                  "Sec-Fetch-Dest: empty"]
        else:
            h += ["Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
                  "Sec-Fetch-Site: same-site", "Sec-Fetch-Mode: no-cors", "Sec-Fetch-Dest: image"]
        h += [f"Referer: {v['url']}", "Accept-Encoding: gzip, deflate, br, zstd", f"Accept-Language: {v['lang'][1]}",
              f"Cookie: sp={v['nuid']}"]
        if v["via_lb"]:
            h += [f"X-Forwarded-For: {v['ip']}", "X-Forwarded-Proto: https"]
        if post:
            h.append("application/json; charset=utf-8")  # the collector records the content type last
        return h

    def record(self, now_ms: int) -> tuple[bytes, int]:
        """One raw record and the number of events in it."""
        from plowline.payload import CollectorPayload

        rng = self.rng
        if rng.random() < BAD_RECORD_SHARE:
            self.tally["bad_records_injected"] += 1
            if rng.random() < 0.5:
                self.tally["bad_record_not_thrift"] += 1
                return bytes(rng.getrandbits(8) for _ in range(rng.randint(40, 400))), 1
            self.tally["bad_record_body_not_json"] += 1
            v = self.visit()
            return CollectorPayload(
                ip_address=v["ip"], timestamp=now_ms, encoding="UTF-8", collector=COLLECTOR_NAME,
                user_agent=v["ua"], referer_uri=v["url"], path=TP2_PATH, body='{"schema":"iglu:com.snowplow',
                headers=self.headers(v, post=True, body_len=29), content_type="application/json; charset=utf-8",
                hostname=COLLECTOR_HOST, network_user_id=v["nuid"],
            ).to_thrift(), 1
        v = self.visit()
        ip = LB_IP if v["via_lb"] else v["ip"]
        self.get_style = rng.random() < GET_SHARE
        if self.get_style:
            self.tally["records_get"] += 1
            ev = self.event(weighted(rng, GET_EVENT_KINDS), v, now_ms, self.bad_kind())
            query = "&".join(f"{k}={quote(val, safe=SAFE)}" for k, val in ev.items())
            payload = CollectorPayload(
                ip_address=ip, timestamp=now_ms, encoding="UTF-8", collector=COLLECTOR_NAME, user_agent=v["ua"],
                referer_uri=v["url"], path="/i", querystring=query, headers=self.headers(v, post=False),
                hostname=COLLECTOR_HOST, network_user_id=v["nuid"],
            )
            return payload.to_thrift(), 1
        self.tally["records_post"] += 1
        size = weighted(rng, POST_BATCH_SIZES)
        events = [self.event(weighted(rng, POST_EVENT_KINDS), v, now_ms, self.bad_kind()) for _ in range(size)]
        body = json.dumps({"schema": PAYLOAD_DATA, "data": events}, separators=(",", ":"), ensure_ascii=False)
        payload = CollectorPayload(
            ip_address=ip, timestamp=now_ms, encoding="UTF-8", collector=COLLECTOR_NAME, user_agent=v["ua"],
            referer_uri=v["url"], path=TP2_PATH, body=body,
            headers=self.headers(v, post=True, body_len=len(body.encode())),
            content_type="application/json; charset=utf-8", hostname=COLLECTOR_HOST, network_user_id=v["nuid"],
        )
        return payload.to_thrift(), size

    def records(self, count: int, start: int = 0) -> tuple[list[bytes], int]:
        out: list[bytes] = []
        events = 0
        for i in range(start, start + count):
            raw, n = self.record(self.base_ms + i * 7)
            out.append(raw)
            events += n
        return out, events


def write_records_file(path: Path, records: list[bytes]) -> None:
    with path.open("wb") as f:
        for raw in records:
            f.write(struct.pack(">I", len(raw)))
            f.write(raw)


def read_records_file(path: Path, share: int = 0, shares: int = 1) -> list[bytes]:
    """Every `shares`-th record from the `share`-th, read one at a time (only those are kept in memory)."""
    out: list[bytes] = []
    with path.open("rb") as f:
        index = 0
        while head := f.read(4):
            (n,) = struct.unpack(">I", head)
            if index % shares == share:
                out.append(f.read(n))
            else:
                f.seek(n, os.SEEK_CUR)
            index += 1
    return out


# ---------------------------------------------------------------------------------------------
# Enriching in-process.
# ---------------------------------------------------------------------------------------------


def write_resolver_config(path: Path) -> None:
    path.write_text(json.dumps({
        "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
        "data": {"cacheSize": 500, "cacheTtl": 600, "repositories": []},
    }))


def build_pipeline(resolver: Path, iglu: Path, data_dir: Path) -> Any:
    from plowline.config import load_config
    from plowline.enrich.service import build_pipeline as build

    settings = load_config(overrides={
        "data_dir": str(data_dir), "enrich": {"iglu": [str(iglu)], "resolver": str(resolver)},
    })
    return build(settings)


def quiet_logs() -> None:
    from plowline.observability import configure_logging

    configure_logging("warning", "console")


def peak_rss_mib() -> float:
    """Peak RSS of this process's address space: VmHWM of /proc/self/status.

    Not ru_maxrss: Linux carries the pre-exec address space's peak into ru_maxrss across exec, so a
    worker started by multiprocessing's spawn (fork + exec of the benchmark process, whose RSS holds
    all the records) would report the parent's RSS. VmHWM is the peak of the worker's own memory.
    """
    return proc_status_kib(os.getpid(), "VmHWM") / 1024


def current_rss_mib() -> float:
    return proc_status_kib(os.getpid(), "VmRSS") / 1024


def ru_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def other_load_pct(busy_s: float, own_cpu_s: float, wall_s: float) -> float:
    """CPU used by everything but the measured processes, in % of one core, over a measurement."""
    return max(0.0, (busy_s - own_cpu_s) / wall_s * 100) if wall_s > 0 else 0.0


def wait_quiet(max_wait_s: float, threshold_pct: float = QUIET_PCT) -> dict[str, float]:
    """Wait (1 s samples) until the rest of the machine uses < threshold_pct of a core, at most max_wait_s."""
    started = time.perf_counter()
    busy = 0.0
    while True:
        b0, c0, t0 = machine_busy_s(), time.process_time(), time.perf_counter()
        time.sleep(1.0)
        busy = other_load_pct(machine_busy_s() - b0, time.process_time() - c0, time.perf_counter() - t0)
        waited = time.perf_counter() - started
        if busy < threshold_pct or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "other_load_pct_before": round(busy, 1)}


def enrich_all(pipeline: Any, records: list[bytes]) -> dict[str, Any]:
    """process_batch over the records in batches of BATCH_RECORDS; wall and CPU time, counts."""
    from plowline.enrich.worker import process_batch

    events = good = bad = dropped = 0
    bad_types: Counter[str] = Counter()
    busy0 = machine_busy_s()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    start_mono = time.clock_gettime(time.CLOCK_MONOTONIC)
    for i in range(0, len(records), BATCH_RECORDS):
        out = process_batch(pipeline, records[i : i + BATCH_RECORDS], sys.maxsize)
        events += out.events_in
        good += len(out.good)
        bad += len(out.bad)
        dropped += out.dropped
        for row in out.bad:
            # bad-row schema name, e.g. schema_violations; cheap enough to leave in the timed loop
            bad_types[row[:200].split(b"badrows/", 1)[-1].split(b"/", 1)[0].decode()] += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    busy1 = machine_busy_s()
    return {
        "records": len(records), "events": events, "good": good, "bad": bad, "dropped": dropped,
        "bad_types": dict(bad_types), "wall_s": wall, "cpu_s": cpu,
        "start": start_mono, "end": start_mono + wall, "machine_busy_start_s": busy0, "machine_busy_end_s": busy1,
        "other_load_pct": other_load_pct(busy1 - busy0, cpu, wall),
        "events_per_s": events / wall, "events_per_cpu_s": events / cpu if cpu else 0.0,
        "good_per_s": good / wall,
    }


def worker_main(args: tuple[Any, ...]) -> dict[str, Any]:
    """One worker process: own pipeline, own share of the records, synchronised start."""
    records_path, share, shares, resolver, iglu, data_dir, warmup, barrier = args
    quiet_logs()
    rss_start = current_rss_mib()
    pipeline = build_pipeline(Path(resolver), Path(iglu), Path(data_dir))
    rss_pipeline = current_rss_mib()
    peak_pipeline = peak_rss_mib()
    mine = read_records_file(Path(records_path), share, shares)
    records_mib = sum(len(r) for r in mine) / 2**20
    rss_loaded = current_rss_mib()
    enrich_all(pipeline, mine[:warmup])
    barrier.wait()
    result = enrich_all(pipeline, mine)
    result.update(
        share=share, pid=os.getpid(), rss_after_import_mib=rss_start, rss_after_pipeline_mib=rss_pipeline,
        peak_rss_after_pipeline_mib=peak_pipeline,
        rss_after_loading_records_mib=rss_loaded, records_mib=records_mib, peak_rss_mib=peak_rss_mib(),
        rss_end_mib=current_rss_mib(), ru_maxrss_mib=ru_maxrss_mib(),
    )
    return result


def run_workers(n: int, records_path: Path, resolver: Path, iglu: Path, data_dir: Path, warmup: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            results = pool.map(
                worker_main,
                [(str(records_path), k, n, str(resolver), str(iglu), str(data_dir), warmup // n, barrier)
                 for k in range(n)],
                chunksize=1,
            )
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    events = sum(r["events"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    busy = max(r["machine_busy_end_s"] for r in results) - min(r["machine_busy_start_s"] for r in results)
    return {
        "workers": n, "events": events, "good": sum(r["good"] for r in results),
        "bad": sum(r["bad"] for r in results), "wall_s": wall, "cpu_s": cpu, "events_per_s": events / wall,
        "events_per_s_per_core": events / wall / n, "events_per_cpu_s": events / cpu,
        "other_load_pct": other_load_pct(busy, cpu, wall), "per_worker": results,
    }


# ---------------------------------------------------------------------------------------------
# The real `plowline enrich` on the file log.
# ---------------------------------------------------------------------------------------------


async def write_raw_log(url: str, records: list[bytes]) -> None:
    from plowline.streams import open_sink

    sink = open_sink(url)
    try:
        for i in range(0, len(records), 1000):
            await sink.write(records[i : i + 1000])
    finally:
        await sink.close()


class LogCounter:
    """Counts the intact records of a file log incrementally (framing.read_frames per segment)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.offsets: dict[tuple[str, int], int] = {}
        self.count = 0

    def refresh(self) -> int:
        from plowline.streams.file_log.framing import partitions, read_frames, segment_name, segment_seqs

        if not self.root.exists():
            return 0
        for part in partitions(self.root):
            for seq in segment_seqs(self.root / part):
                key = (part, seq)
                offset = self.offsets.get(key, 0)
                fd = os.open(self.root / part / segment_name(seq), os.O_RDONLY)
                try:
                    while True:
                        got, offset, _end = read_frames(fd, offset, 4096)
                        self.count += len(got)
                        if len(got) < 4096:
                            break
                finally:
                    os.close(fd)
                self.offsets[key] = offset
        return self.count


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_cli(records: list[bytes], expected_good: int, expected_bad: int, resolver: Path, iglu: Path,
            work: Path, timeout_s: float) -> dict[str, Any]:
    from plowline.streams.file_log.framing import iter_records

    data_dir = work / "cli-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    t0 = time.perf_counter()
    asyncio.run(write_raw_log(f"file://{data_dir / 'streams' / 'raw'}", records))
    write_s = time.perf_counter() - t0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLOWLINE_")}
    env["PLOWLINE_LOG_LEVEL"] = "warning"
    cmd = [str(PLOWLINE_BIN), "enrich", "--data-dir", str(data_dir), "--workers", "1",
           "--resolver", str(resolver), "--iglu", str(iglu)]
    log_path = work / "cli-enrich.log"
    good_counter = LogCounter(data_dir / "streams" / "enriched")
    bad_counter = LogCounter(data_dir / "streams" / "bad")
    timeline: list[tuple[float, int]] = []
    first_at = None
    with log_path.open("wb") as log:
        busy0, harness0 = machine_busy_s(), time.process_time()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        try:
            done_at = None
            while time.perf_counter() - started < timeout_s:
                time.sleep(0.05)
                good, bad = good_counter.refresh(), bad_counter.refresh()
                now = time.perf_counter() - started
                if good + bad and first_at is None:
                    first_at = now
                timeline.append((round(now, 3), good + bad))
                if good >= expected_good and bad >= expected_bad:
                    done_at = now
                    break
                if proc.poll() is not None:
                    break
            cpu_s = proc_cpu_s(proc.pid) if proc.poll() is None else float("nan")
            peak_rss_kib = proc_status_kib(proc.pid, "VmHWM") if proc.poll() is None else 0
            wall_s = time.perf_counter() - started
            harness_cpu_s = time.process_time() - harness0  # this script's polling of the logs
            other = other_load_pct(machine_busy_s() - busy0, cpu_s + harness_cpu_s, wall_s)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    final_good = sum(1 for _ in iter_records(data_dir / "streams" / "enriched"))
    final_bad = sum(1 for _ in iter_records(data_dir / "streams" / "bad"))
    events = expected_good + expected_bad
    result: dict[str, Any] = {
        "command": " ".join(cmd), "records": len(records), "raw_write_s": write_s,
        "expected_good": expected_good, "expected_bad": expected_bad,
        "enriched_records": final_good, "bad_records": final_bad, "exit_code": proc.returncode,
        "complete": done_at is not None, "first_output_s": first_at, "done_s": done_at,
        "cpu_s": cpu_s, "harness_cpu_s": harness_cpu_s, "other_load_pct": other, "peak_rss_mib": peak_rss_kib / 1024, "timeline": timeline[:: max(1, len(timeline) // 200)],
    }
    if done_at is not None and first_at is not None:
        result["events_per_s_total"] = events / done_at  # including start-up (imports, pipeline)
        # steady state: from the first output to the last, the events processed meanwhile
        first_count = next(c for _, c in timeline if c)
        result["events_per_s_steady"] = (events - first_count) / max(done_at - first_at, 1e-9)
        result["events_per_cpu_s"] = events / cpu_s
    if result["exit_code"] not in (0, None) or not result["complete"]:
        result["log_tail"] = log_path.read_text(errors="replace")[-3000:]
    return result


# ---------------------------------------------------------------------------------------------
# Reporting.
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return machine_facts()


def fmt(n: float | None, digits: int = 0) -> str:
    if n is None or math.isnan(n):
        return "-"
    return f"{n:,.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    mix = result["mix"]
    print(f"\nmix: {mix['records']:,} records, {mix['events']:,} events ({mix['events_per_record']:.2f}/record), "
          f"{mix['mean_record_bytes']:,} bytes/record; {mix['get_share']:.0%} GET records; "
          f"bad events/records injected: {mix['bad_injected_share']:.2%} of events")
    print("\nper core: wall = events/s ÷ processes; CPU = events per CPU-second of the enriching process(es).")
    print("other load: CPU used meanwhile by the rest of the machine, in % of one core (noisy above "
          f"{QUIET_PCT:.0f}%).\n")
    print("| measurement | events/s | per core (wall) | per core (CPU) | other load | peak RSS MiB (VmHWM) |")
    print("|---|---|---|---|---|---|")
    single = result.get("single")
    if single:
        runs = ", ".join(fmt(r["events_per_s"]) for r in single["runs"])
        print(f"| 1 process, in-process `process_batch` (median of {len(single['runs'])}: {runs}) | "
              f"**{fmt(single['events_per_s'])}** | {fmt(single['events_per_s'])} | "
              f"**{fmt(single['events_per_cpu_s'])}** | {fmt(single['other_load_pct'])}% | "
              f"{fmt(single['peak_rss_mib'], 1)} (all records in memory) |")
    for mpr in result.get("multiprocess", []):
        rss = " / ".join(fmt(w["peak_rss_mib"], 1) for w in mpr["per_worker"])
        print(f"| {mpr['workers']} worker process{'es' if mpr['workers'] > 1 else ''}, `process_batch` | "
              f"{fmt(mpr['events_per_s'])} | {fmt(mpr['events_per_s_per_core'])} | {fmt(mpr['events_per_cpu_s'])} | "
              f"{fmt(mpr['other_load_pct'])}% | {rss} |")
    cli = result.get("cli")
    if cli:
        print(f"| `plowline enrich --workers 1` on the file log: steady (incl. start-up) | "
              f"{fmt(cli.get('events_per_s_steady'))} ({fmt(cli.get('events_per_s_total'))}) | "
              f"{fmt(cli.get('events_per_s_steady'))} | {fmt(cli.get('events_per_cpu_s'))} | "
              f"{fmt(cli.get('other_load_pct'))}% | {fmt(cli['peak_rss_mib'], 1)} |")
        print(f"\nplowline enrich: first output after {fmt(cli['first_output_s'], 2)} s, all "
              f"{cli['enriched_records']:,} enriched + {cli['bad_records']:,} bad after {fmt(cli['done_s'], 2)} s")
    if "scaling" in result:
        print(f"scaling 1 -> 2 worker processes: {result['scaling']:.2f}x aggregate events/s")
    if single:
        verdict = "met" if single["events_per_cpu_s"] >= TARGET_PER_CORE else "missed"
        print(f"target ≥ {TARGET_PER_CORE:,} events/s per core (1 process, per CPU-second): {verdict} "
              f"({single['events_per_cpu_s'] / TARGET_PER_CORE:.0%} of it)")


def profile_single(pipeline: Any, records: list[bytes], out: Path, top: int) -> None:
    import cProfile
    import pstats

    from plowline.enrich.worker import process_batch

    prof = cProfile.Profile()
    prof.enable()
    for i in range(0, len(records), BATCH_RECORDS):
        process_batch(pipeline, records[i : i + BATCH_RECORDS], sys.maxsize)
    prof.disable()
    prof.dump_stats(out)
    for key in ("tottime", "cumulative"):
        print(f"\n=== top {top} by {key} ===")
        pstats.Stats(prof).sort_stats(key).print_stats(top)
    print(f"profile written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="raw records measured (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="single-process passes over the records (median)")
    parser.add_argument("--cli-records", type=int, default=20_000, help="records for the `plowline enrich` run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iglu", type=Path, default=DEFAULT_IGLU, help="local Iglu repository (static layout)")
    parser.add_argument("--quiet-wait", type=float, default=15,
                        help="before each measurement, wait up to this many seconds for other load to drop")
    parser.add_argument("--only", choices=["single", "multi", "cli"], action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--profile", action="store_true", help="cProfile the single-process path, then exit")
    parser.add_argument("--seconds", type=float, default=0,
                        help="single process: keep looping over the records for at least this long (for py-spy)")
    args = parser.parse_args()
    parts = {"single"} if args.profile else set(args.only or ["single", "multi", "cli"])
    if not args.iglu.is_dir():
        print(f"no Iglu repository at {args.iglu} (--iglu DIR)", file=sys.stderr)
        return 2
    if "cli" in parts and not PLOWLINE_BIN.exists():
        print(f"{PLOWLINE_BIN} not found: run the script with the project's venv python", file=sys.stderr)
        return 2

    quiet_logs()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    problems: list[str] = []
    noisy: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="plowline-enrich-bench-"))
    try:
        resolver = work / "resolver.json"
        write_resolver_config(resolver)
        t0 = time.perf_counter()
        gen = Generator(args.seed)
        n_records = max(args.records, args.cli_records if "cli" in parts else 0)
        sample, _ = gen.records(args.records)
        tally = Counter(gen.tally)  # what went into the measured records
        records = sample + gen.records(n_records - len(sample), start=len(sample))[0]
        gen_s = time.perf_counter() - t0
        injected_bad = tally["bad_events_injected"] + tally["bad_records_injected"]
        mix: dict[str, Any] = {
            "records": len(sample), "mean_record_bytes": round(sum(map(len, sample)) / len(sample)),
            "generated_in_s": round(gen_s, 2), "seed": args.seed, "user_agents": len(gen.user_agents),
            "ips": len(gen.ips), "get_share": tally["records_get"] / len(sample), "bad_injected": injected_bad,
            "tally": dict(sorted(tally.items())),
        }
        print(f"generated {n_records:,} records in {gen_s:.1f} s; work dir {work}", flush=True)

        t0 = time.perf_counter()
        pipeline = build_pipeline(resolver, args.iglu, work / "data")
        build_s = time.perf_counter() - t0
        if args.profile:
            enrich_all(pipeline, sample[: len(sample) // 10])
            profile_single(pipeline, sample, RESULTS_DIR / f"enrich_profile-{stamp}.pstats", 15)
            return 0

        # Warm-up: caches (UA parsing, Iglu schemas and validators) filled, every code path taken once.
        warm = enrich_all(pipeline, sample[: max(1000, len(sample) // 10)])
        result: dict[str, Any] = {
            "benchmark": "enrich_throughput", "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(), "mix": mix,
            "pipeline_build_s": round(build_s, 2), "batch_records": BATCH_RECORDS,
            "target_events_per_s_per_core": TARGET_PER_CORE, "quiet_threshold_pct": QUIET_PCT,
            "warmup": {k: warm[k] for k in ("records", "events", "wall_s", "events_per_s")},
        }

        def note_noise(what: str, measured: dict[str, Any]) -> None:
            if measured.get("other_load_pct", 0) > QUIET_PCT:
                noisy.append(f"{what}: other processes used {measured['other_load_pct']:.0f}% of a core")

        full: dict[str, Any] = {}
        if "single" in parts:
            quiet = wait_quiet(args.quiet_wait)
            runs = []
            deadline = time.perf_counter() + args.seconds
            while len(runs) < args.rounds or time.perf_counter() < deadline:
                runs.append(enrich_all(pipeline, sample))
                print(f"1 process: {runs[-1]['events_per_s']:,.0f} events/s, "
                      f"{runs[-1]['events_per_cpu_s']:,.0f} per CPU-second "
                      f"(other load {runs[-1]['other_load_pct']:.0f}% of a core)", flush=True)
            full = sorted(runs, key=lambda r: r["events_per_cpu_s"])[len(runs) // 2]
            result["single"] = {
                "events_per_s": full["events_per_s"], "events_per_cpu_s": full["events_per_cpu_s"],
                "good_per_s": full["good_per_s"], "other_load_pct": full["other_load_pct"], "quiet_wait": quiet,
                "events": full["events"], "good": full["good"], "bad": full["bad"], "dropped": full["dropped"],
                "bad_share": full["bad"] / full["events"], "bad_types": full["bad_types"],
                "bad_injected": injected_bad, "peak_rss_mib": peak_rss_mib(),
                "runs": [{k: r[k] for k in ("wall_s", "cpu_s", "events_per_s", "events_per_cpu_s", "other_load_pct")}
                         for r in runs],
            }
            note_noise("1 process", full)
        if not full:
            full = enrich_all(pipeline, sample)  # the counts, for the mix and the CLI run's expectations
        # Every injected bad event or record must become exactly one bad row, and nothing else.
        if full["bad"] != injected_bad:
            problems.append(f"bad rows {full['bad']} != bad events and records injected {injected_bad}")
        mix["events"] = full["events"]
        mix["events_per_record"] = full["events"] / len(sample)
        mix["bad_injected_share"] = injected_bad / full["events"]

        if "multi" in parts:
            records_path = work / "records.bin"
            write_records_file(records_path, sample)
            result["multiprocess"] = []
            for n in (1, 2):
                quiet = wait_quiet(args.quiet_wait)
                mpr = run_workers(n, records_path, resolver, args.iglu, work / "data", max(1000, len(sample) // 10))
                mpr["quiet_wait"] = quiet
                result["multiprocess"].append(mpr)
                note_noise(f"{n} worker process(es)", mpr)
                print(f"{n} worker process(es): {mpr['events_per_s']:,.0f} events/s aggregate, "
                      f"{mpr['events_per_s_per_core']:,.0f} per core (other load {mpr['other_load_pct']:.0f}%)",
                      flush=True)
                if mpr["events"] != full["events"] or mpr["bad"] != full["bad"]:
                    problems.append(f"{n} workers: {mpr['events']} events / {mpr['bad']} bad rows, "
                                    f"expected {full['events']} / {full['bad']}")
            result["scaling"] = result["multiprocess"][1]["events_per_s"] / result["multiprocess"][0]["events_per_s"]

        if "cli" in parts:
            cli_records = records[: args.cli_records]
            if len(cli_records) == len(sample):
                exp_good, exp_bad = full["good"], full["bad"]
            else:
                counts = enrich_all(pipeline, cli_records)
                exp_good, exp_bad = counts["good"], counts["bad"]
            quiet = wait_quiet(args.quiet_wait)
            cli = run_cli(cli_records, exp_good, exp_bad, resolver, args.iglu, work, timeout_s=120)
            cli["quiet_wait"] = quiet
            result["cli"] = cli
            note_noise("plowline enrich", cli)
            print(f"plowline enrich: {fmt(cli.get('events_per_s_steady'))} events/s steady, "
                  f"done in {fmt(cli['done_s'], 2)} s", flush=True)
            if not cli["complete"] or cli["enriched_records"] != exp_good or cli["bad_records"] != exp_bad:
                problems.append(f"plowline enrich: {cli['enriched_records']} enriched / {cli['bad_records']} bad, "
                                f"expected {exp_good} / {exp_bad} (complete={cli['complete']})")
                if cli.get("log_tail"):
                    print(cli["log_tail"], file=sys.stderr)
        result["problems"] = problems
        result["noisy"] = noisy
        print_table(result)
        for path in (RESULTS_DIR / f"enrich_throughput-{stamp}.json", RESULTS_DIR / "enrich_throughput-latest.json"):
            path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nresults: {RESULTS_DIR / f'enrich_throughput-{stamp}.json'}")
        if noisy:
            print("NOISY (figures may be low):\n  " + "\n  ".join(noisy))
        if problems:
            print("PROBLEMS:\n  " + "\n  ".join(problems))
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
