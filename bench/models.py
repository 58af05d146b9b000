"""Benchmark: `plowline models run` time on DuckDB and PostgreSQL, full and incremental.

Generates N synthetic enriched events shaped like web traffic: users with sessions of 1-6 page
views, each page view followed by 0-15 page pings (10 s heartbeat, 5 s minimum visit length, with
scrolling), campaigns, search and social referrers, some logged-in users, and a few structured
events. 98 % of them are loaded into a fresh warehouse with the real loaders (DuckDB: a file in a
temp dir; PostgreSQL: a database of its own, dropped after, ANALYZEd after each load as autovacuum
would be within a minute), then:

1. full: `run_models(full_refresh=True)` over everything;
2. idle: an incremental run with nothing new;
3. incremental: the last 2 % are loaded (new sessions, plus late pings of old sessions) and an
   incremental run picks them up.

The lookback window is set to 0 here: every event is loaded within seconds, so the default 10 min
window would make the incremental runs redo everything (in a live pipeline it covers a few minutes
of loads). Prints the times and rows/s, and writes bench/results/models-<UTC time>.json. Usage:
    .venv/bin/python bench/models.py [--events 1000000] [--targets duckdb,postgres] [--dsn URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine_facts

from plowline.analytics.runner import ModelsRun, run_models
from plowline.config import Settings
from plowline.event import EnrichedEvent

DEFAULT_DSN = os.environ.get("PLOWLINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
PAGES = ["/", "/products", "/products/blue-shoes", "/products/red-hat", "/cart", "/checkout", "/blog/how-we-build",
         "/about", "/search", "/pricing"]
ENTRIES: list[dict[str, Any]] = [
    {},  # direct
    {"refr_source": "Google", "refr_medium": "search", "refr_urlhost": "www.google.com",
     "page_referrer": "https://www.google.com/"},
    {"refr_source": "Facebook", "refr_medium": "social", "refr_urlhost": "www.facebook.com",
     "page_referrer": "https://www.facebook.com/"},
    {"mkt_source": "newsletter", "mkt_medium": "email", "mkt_campaign": "spring-sale"},
    {"mkt_source": "google", "mkt_medium": "cpc", "mkt_campaign": "brand", "mkt_term": "shoes"},
]
BATCH = 20_000


class Generator:
    """Deterministic synthetic traffic; `session()` yields one session's events in time order."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _event(self, kind: str, moment: datetime, base: dict[str, Any], **fields: Any) -> bytes:
        self.count += 1
        return EnrichedEvent(
            event_id=self._id(), collector_tstamp=moment + timedelta(milliseconds=80), derived_tstamp=moment,
            dvce_created_tstamp=moment, event=kind, event_name=kind, **base, **fields,
        ).to_tsv().encode()

    def session(self, user: int, index: int, start: datetime) -> Iterator[tuple[bytes, str, datetime]]:
        """(TSV, page_view_id, time) of each event."""
        rng = self.rng
        session_id = self._id()
        base: dict[str, Any] = {
            "app_id": "shop-web", "platform": "web", "v_collector": "ssc-3.2.0-kinesis",
            "v_etl": "enrich-kinesis-6.1.0", "name_tracker": "sp", "v_tracker": "js-3.23.0",
            "domain_userid": str(uuid.UUID(int=user + 1)), "domain_sessionid": session_id,
            "domain_sessionidx": index, "network_userid": str(uuid.UUID(int=user + 10**9)),
            "user_id": f"customer-{user}" if user % 4 == 0 else None,
            "geo_country": rng.choice(["DE", "FR", "GB", "US"]), "geo_city": "Berlin",
            "br_family": "Chrome", "os_family": "Mac OS X", "dvce_type": "Computer", "dvce_ismobile": False,
            "useragent": "Mozilla/5.0 (Macintosh) Chrome/124.0", "br_viewwidth": 1440, "br_viewheight": 800,
            "doc_width": 1425,
        }
        entry = rng.choice(ENTRIES)
        moment = start
        for page in range(rng.choice([1, 1, 2, 2, 3, 4, 6])):
            page_view_id = self._id()
            path = rng.choice(PAGES)
            fields = {
                "page_url": f"https://shop.example.com{path}", "page_urlhost": "shop.example.com",
                "page_urlpath": path, "page_title": path, "doc_height": rng.choice([2000, 4000, 8000]),
                "contexts": [{"schema": WEB_PAGE, "data": {"id": page_view_id}}],
                **(entry if page == 0 else {}),
            }
            yield self._event("page_view", moment, base, **fields), page_view_id, moment
            pings = rng.choice([0, 0, 1, 2, 3, 5, 8, 15])
            offset = 0
            for ping in range(pings):
                at = moment + timedelta(seconds=5 + 10 * ping + rng.random())
                offset = min(offset + rng.randrange(0, 900), fields["doc_height"])
                yield self._event("page_ping", at, base, pp_yoffset_min=0, pp_yoffset_max=offset, pp_xoffset_min=0,
                                  pp_xoffset_max=0, **fields), page_view_id, at
            if rng.random() < 0.05:
                yield self._event("struct", moment + timedelta(seconds=2), base, se_category="ui",
                                  se_action="click"), page_view_id, moment
            moment += timedelta(seconds=5 + 10 * pings + rng.randrange(1, 30))

    def traffic(self, events: int) -> list[bytes]:
        """At least `events` events: sessions of 3000 users spread over the days from T0."""
        out: list[bytes] = []
        sessions_of: dict[int, int] = {}
        moment = T0
        while len(out) < events:
            user = self.rng.randrange(max(3000, events // 60))
            sessions_of[user] = sessions_of.get(user, 0) + 1
            moment += timedelta(seconds=self.rng.randrange(1, 20))
            out.extend(line for line, _, _ in self.session(user, sessions_of[user], moment))
        return out[:events]


def late_pings(lines: list[bytes], count: int) -> list[bytes]:
    """Pings for page views among `lines` (old sessions), arriving late: collector time as of then."""
    rng = random.Random(7)
    out: list[bytes] = []
    views = [line for line in lines[: len(lines) // 2] if b"\tpage_view\t" in line]
    for line in rng.sample(views, min(count, len(views))):
        event = EnrichedEvent.from_tsv(line.decode())
        assert event.collector_tstamp is not None
        event.event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        event.event = event.event_name = "page_ping"
        later = event.collector_tstamp + timedelta(seconds=200)
        event.collector_tstamp = event.derived_tstamp = event.dvce_created_tstamp = later
        event.pp_yoffset_max = 600
        out.append(event.to_tsv().encode())
    return out


async def load(settings: Settings, target: str, lines: list[bytes]) -> None:
    if target == "postgres":
        from plowline.storage.postgres import open_postgres_loader

        loader: Any = open_postgres_loader(settings, "enriched")
    else:
        from plowline.storage.duckdb import DuckDBLoader, warehouse_path

        loader = DuckDBLoader(warehouse_path(settings), "enriched", serve_queries=False)
    try:
        for start in range(0, len(lines), BATCH):
            await loader.write(lines[start : start + BATCH])
    finally:
        await loader.close()
    if target == "postgres":
        # What autovacuum does within a minute of a load this size: without statistics the planner
        # cannot know load_tstamp follows the table's order, and scans it whole instead of its BRIN index.
        import psycopg

        with psycopg.connect(settings.storage.postgres.dsn, autocommit=True) as conn:
            conn.execute("ANALYZE atomic.events")


def timed(settings: Settings, target: str, **options: Any) -> tuple[float, ModelsRun]:
    started = time.perf_counter()
    result = run_models(settings, target=target, **options)
    return time.perf_counter() - started, result


def bench_target(target: str, old: list[bytes], new: list[bytes], dsn: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="plowline-bench-models-") as directory:
        database = f"plowline_bench_models_{uuid.uuid4().hex[:8]}"
        config: dict[str, Any] = {"data_dir": directory, "models": {"lookback_window_s": 0}}
        if target == "postgres":
            import psycopg
            from psycopg import sql
            from psycopg.conninfo import make_conninfo

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            config["storage"] = {"postgres": {"dsn": make_conninfo(dsn, dbname=database)}}
        settings = Settings.model_validate(config)
        try:
            started = time.perf_counter()
            asyncio.run(load(settings, target, old))
            load_s = time.perf_counter() - started
            full_s, full = timed(settings, target, full_refresh=True)
            idle_s, _ = timed(settings, target)
            asyncio.run(load(settings, target, new))
            incremental_s, incremental = timed(settings, target)
        finally:
            if target == "postgres":
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                 [database])
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
    rows = {count.model: count.rows for count in incremental.counts}
    rebuilt = {count.model: count.rebuilt for count in incremental.counts}
    return {
        "target": target, "load_s": round(load_s, 2),
        "full_s": round(full_s, 2), "full_events_per_s": round(len(old) / full_s),
        "full_rows": {count.model: count.rows for count in full.counts},
        "idle_incremental_s": round(idle_s, 2),
        "incremental_s": round(incremental_s, 2), "incremental_new_events": len(new),
        "incremental_rebuilt": rebuilt, "rows_after": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--targets", default="duckdb,postgres")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args()

    started = time.perf_counter()
    generator = Generator()
    lines = generator.traffic(args.events)
    split = int(len(lines) * 0.98)
    old = lines[:split]
    new = lines[split:]
    late = late_pings(old, max(1, len(new) // 20))
    new = new[: len(new) - len(late)] + late  # still N events in all
    print(f"generated {len(lines)} events in {time.perf_counter() - started:.1f} s "
          f"({len(old)} first, then {len(new)} incl. {len(late)} late pings)", flush=True)

    results = []
    for target in args.targets.split(","):
        result = bench_target(target.strip(), old, new, args.dsn)
        results.append(result)
        print(f"{result['target']:8} load {result['load_s']:7.2f} s | full run {result['full_s']:6.2f} s "
              f"({result['full_events_per_s']:,} events/s; {result['full_rows']}) | idle run "
              f"{result['idle_incremental_s']:.2f} s | incremental run {result['incremental_s']:.2f} s for "
              f"{result['incremental_new_events']} new events (rebuilt {result['incremental_rebuilt']})", flush=True)

    record = {"benchmark": "models", "events": len(lines), "machine": machine_facts(),
              "when": datetime.now(UTC).isoformat(), "results": results}
    out = Path(__file__).resolve().parent / "results" / f"models-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
