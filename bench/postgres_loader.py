"""Benchmark: the postgres loader's rows/s against psql's \\copy of the same TSV, in the same run.

Generates N realistic enriched events (page views, page pings, structured, self-describing and
ecommerce events with the usual contexts), writes their TSV to a file, then in a fresh schema:

1. baseline: `psql -c "\\copy plain (…131 columns…) FROM file (FORMAT csv, DELIMITER tab, QUOTE \\x01)"`
   into a plain table with the same columns as <schema>.events (no indexes);
2. loader: `PostgresLoader.write` in batches of --batch-size (storage.batch_size, default 1000)
   into <schema>.events (COPY to staging, INSERT … ON CONFLICT, one transaction per batch).

Both loads alternate for --rounds rounds (the tables emptied between rounds) since the machine may
be shared; prints the median rows/s of each and their ratio (target ≥ 0.5). Usage:
    .venv/bin/python bench/postgres_loader.py [--events 100000] [--batch-size 1000] [--rounds 3] [--dsn URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from plowline.config import Settings
from plowline.event import FIELD_NAMES, EnrichedEvent
from plowline.storage.postgres import open_postgres_loader

DEFAULT_DSN = os.environ.get("PLOWLINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
PAGES = ["/", "/products", "/products/blue-shoes", "/cart", "/checkout", "/blog/how-we-build", "/about", "/search"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def realistic_event(i: int, rng: random.Random) -> EnrichedEvent:
    """One event of a typical web tracker mix; sessions of ~20 events from ~2000 users."""
    user = rng.randrange(2000)
    moment = T0 + timedelta(milliseconds=53 * i + rng.randrange(40))
    path = rng.choice(PAGES)
    page_view_id = _uuid(rng)
    kind = rng.choices(["page_view", "page_ping", "struct", "unstruct", "transaction"], [40, 40, 8, 10, 2])[0]
    event = EnrichedEvent(
        app_id="shop-web",
        platform="web",
        etl_tstamp=moment + timedelta(seconds=1, milliseconds=rng.randrange(900)),
        collector_tstamp=moment,
        dvce_created_tstamp=moment - timedelta(milliseconds=rng.randrange(500)),
        event_id=_uuid(rng),
        name_tracker="sp",
        v_tracker="js-3.23.0",
        v_collector="ssc-3.2.0-kinesis",
        v_etl="enrich-kinesis-6.1.0",
        user_id=f"customer-{user}" if user % 3 == 0 else None,
        user_ipaddress=f"203.0.{user % 256}.x",
        domain_userid=str(uuid.UUID(int=user + 1)),
        domain_sessionidx=1 + i // 20000,
        network_userid=str(uuid.UUID(int=user + 10_000_000)),
        geo_country="DE",
        geo_region="BE",
        geo_city="Berlin",
        geo_zipcode="10115",
        geo_latitude=52.5321,
        geo_longitude=13.3849,
        geo_region_name="Land Berlin",
        geo_timezone="Europe/Berlin",
        page_url=f"https://shop.example.com{path}?utm_source=newsletter&utm_medium=email",
        page_title=f"{path.strip('/').title() or 'Home'} — Example Shop",
        page_referrer="https://www.google.com/",
        page_urlscheme="https",
        page_urlhost="shop.example.com",
        page_urlport=443,
        page_urlpath=path,
        page_urlquery="utm_source=newsletter&utm_medium=email",
        refr_urlscheme="https",
        refr_urlhost="www.google.com",
        refr_urlport=443,
        refr_urlpath="/",
        refr_medium="search",
        refr_source="Google",
        mkt_medium="email",
        mkt_source="newsletter",
        contexts=[
            {"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", "data": {"id": page_view_id}},
            {
                "schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0",
                "data": {
                    "navigationStart": 1714550400000 + i,
                    "domComplete": 1714550401234 + i,
                    "loadEventEnd": 1714550401300 + i,
                },
            },
        ],
        useragent=UA,
        br_lang="de-DE",
        br_features_pdf=True,
        br_features_flash=False,
        br_cookies=True,
        br_colordepth="24",
        br_viewwidth=1440,
        br_viewheight=789,
        os_timezone="Europe/Berlin",
        dvce_screenwidth=1920,
        dvce_screenheight=1080,
        doc_charset="UTF-8",
        doc_width=1425,
        doc_height=5120,
        dvce_sent_tstamp=moment - timedelta(milliseconds=rng.randrange(100)),
        derived_contexts=[
            {
                "schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-0-0",
                "data": {
                    "useragentFamily": "Chrome",
                    "useragentMajor": "124",
                    "useragentMinor": "0",
                    "useragentPatch": "0",
                    "useragentVersion": "Chrome 124.0.0",
                    "osFamily": "Mac OS X",
                    "osMajor": "10",
                    "osMinor": "15",
                    "osPatch": "7",
                    "osPatchMinor": None,
                    "osVersion": "Mac OS X 10.15.7",
                    "deviceFamily": "Mac",
                },
            }
        ],
        domain_sessionid=str(uuid.UUID(int=user * 1000 + i // 20000)),
        derived_tstamp=moment - timedelta(milliseconds=30),
        event_vendor="com.snowplowanalytics.snowplow",
        event_format="jsonschema",
        event_version="1-0-0",
        event_fingerprint=f"{rng.getrandbits(128):032x}",
    )
    if kind == "page_view":
        event.event, event.event_name = "page_view", "page_view"
    elif kind == "page_ping":
        event.event, event.event_name = "page_ping", "page_ping"
        event.pp_xoffset_min, event.pp_xoffset_max, event.pp_yoffset_min, event.pp_yoffset_max = (
            0,
            0,
            rng.randrange(3000),
            3400,
        )
    elif kind == "struct":
        event.event, event.event_name = "struct", "event"
        event.se_category, event.se_action, event.se_label, event.se_value = "video", "play", "intro", Decimal("12.5")
    elif kind == "unstruct":
        event.event, event.event_name = "unstruct", "link_click"
        event.unstruct_event = {
            "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
            "data": {"targetUrl": "https://shop.example.com/products/red-shoes", "elementId": "hero-cta"},
        }
    else:
        event.event, event.event_name = "transaction", "transaction"
        event.tr_orderid, event.tr_affiliation, event.tr_currency = f"order-{i}", "web", "EUR"
        event.tr_total, event.tr_tax, event.tr_shipping = Decimal("129.90"), Decimal("20.74"), Decimal("4.95")
        event.tr_city, event.tr_country = "Berlin", "DE"
    return event


def generate(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [realistic_event(i, rng).to_tsv().encode() for i in range(count)]


def psql_copy(dsn: str, table: str, path: Path) -> float:
    """Seconds taken by psql's \\copy of the TSV file into `table`."""
    columns = ", ".join(FIELD_NAMES)
    command = rf"\copy {table} ({columns}) FROM '{path}' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')"
    started = time.perf_counter()
    subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c", command], check=True)
    return time.perf_counter() - started


async def load(settings: Settings, lines: list[bytes], batch_size: int) -> float:
    """Seconds taken by the loader to store `lines` in batches (migrations excluded)."""
    loader = open_postgres_loader(settings, "enriched")
    started = time.perf_counter()
    for start in range(0, len(lines), batch_size):
        await loader.write(lines[start : start + batch_size])
    elapsed = time.perf_counter() - started
    await loader.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=Settings().storage.batch_size)
    parser.add_argument("--rounds", type=int, default=3, help="alternate both loads this often; medians reported")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args()

    lines = generate(args.events)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {"storage": {"batch_size": args.batch_size, "postgres": {"dsn": args.dsn, "schema_name": schema}}}
    )
    plain, events = sql.Identifier(schema, "plain"), sql.Identifier(schema, "events")
    baseline_s: list[float] = []
    loader_s: list[float] = []
    redelivery_s = 0.0
    admin = psycopg.connect(args.dsn, autocommit=True)
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.tsv"
            path.write_bytes(b"\n".join(lines) + b"\n")
            os.chmod(directory, 0o755)  # psql reads it; harmless when we are the same user
            open_postgres_loader(settings, "enriched")  # create the schema and tables (not timed)
            admin.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(plain, events))
            for round_number in range(args.rounds):
                # Alternate which goes first, so neither always meets a warmer cache or a checkpoint.
                for which in (0, 1) if round_number % 2 == 0 else (1, 0):
                    if which == 0:
                        baseline_s.append(psql_copy(args.dsn, f"{schema}.plain", path))
                    else:
                        loader_s.append(asyncio.run(load(settings, lines, args.batch_size)))
                counts: Any = admin.execute(
                    sql.SQL("SELECT (SELECT count(*) FROM {}), (SELECT count(*) FROM {})").format(plain, events)
                ).fetchone()
                assert counts == (len(lines), len(lines)), counts
                if round_number == args.rounds - 1:  # the worst case: every event already stored
                    redelivery_s = asyncio.run(load(settings, lines, args.batch_size))
                admin.execute(sql.SQL("TRUNCATE {}, {}").format(plain, events))
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()

    baseline, loaded = len(lines) / statistics.median(baseline_s), len(lines) / statistics.median(loader_s)
    size_mb = sum(map(len, lines)) / 1e6
    print(
        f"events: {len(lines)} ({size_mb:.0f} MB of TSV, {size_mb * 1e6 / len(lines):.0f} B/event), "
        f"loader batch size {args.batch_size}, median of {args.rounds} alternating rounds"
    )
    print(f"psql \\copy into a plain table:      {baseline:>9,.0f} rows/s  (rounds: {_rates(lines, baseline_s)})")
    print(f"postgres loader into atomic.events: {loaded:>9,.0f} rows/s  (rounds: {_rates(lines, loader_s)})")
    print(f"ratio loader / psql: {loaded / baseline:.2f} (target >= 0.5)")
    print(f"redelivery of all of them again (every event skipped): {len(lines) / redelivery_s:,.0f} rows/s")


def _rates(lines: list[bytes], seconds: list[float]) -> str:
    return ", ".join(f"{len(lines) / s:,.0f}" for s in seconds)


if __name__ == "__main__":
    main()
