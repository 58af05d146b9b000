"""Benchmark: the dashboard's JSON API response times over a warehouse of N events (1 million by default).

Builds a fresh DuckDB warehouse with the loader's own schema (plowline.storage.duckdb.migrate) and fills it
in SQL with N synthetic web events over 30 days (page views, page pings, structured and self-describing
events; 20 pages, referrers, campaigns, 8 user agents, 10 countries, 50 000 users, a custom context on
every event) and N/100 bad rows, then starts `plowline dashboard` (Micro on) on it and times each endpoint
over real HTTP: the median and max of --calls calls after one warm-up call, two ways:

* socket: this process holds the warehouse and answers on its query socket (the storage loader's own
  QueryServer), as the duckdb loader does under `plowline up`;
* file: nobody holds it, so every query opens the file read-only, as `plowline dashboard` does when the
  pipeline is stopped.

Prints a table and writes bench/results/dashboard_api-<UTC>.json. Usage:
    .venv/bin/python bench/dashboard_api.py [--events 1000000] [--calls 5] [--via socket,file]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine_facts

from plowline.storage.duckdb import migrate
from plowline.storage.duckdb_queries import QueryServer, query_socket_path

END = datetime(2024, 6, 1, tzinfo=UTC)
DAYS = 30

# One SQL statement builds all N events from range(N); arithmetic on the row number `i` spreads them.
_FILL = """
INSERT INTO atomic.events BY NAME
SELECT
    ['shop', 'blog', 'app'][1 + i % 3] AS app_id,
    'web' AS platform,
    ts + INTERVAL 2 SECOND AS etl_tstamp,
    ts AS collector_tstamp,
    ts AS dvce_created_tstamp,
    ev AS event,
    uuid() AS event_id,
    'js-3.0.0' AS v_tracker,
    'plowline-0.1.0' AS v_collector,
    'plowline-enrich-0.1.0' AS v_etl,
    'user-' || (i % 50000) AS domain_userid,
    'nu-' || (i % 50000) AS network_userid,
    'session-' || (i // 7) AS domain_sessionid,
    ['DE', 'FR', 'US', 'GB', 'NL', 'ES', 'IT', 'SE', 'PL', 'JP'][1 + i % 10] AS geo_country,
    'https://shop.example/p/' || (i % 20) AS page_url,
    'Page ' || (i % 20) AS page_title,
    'shop.example' AS page_urlhost,
    '/p/' || (i % 20) AS page_urlpath,
    CASE WHEN i % 5 = 1 THEN 'www.google.com' WHEN i % 5 = 2 THEN 'www.facebook.com' END AS refr_urlhost,
    CASE WHEN i % 5 = 1 THEN 'search' WHEN i % 5 = 2 THEN 'social' END AS refr_medium,
    CASE WHEN i % 7 = 3 THEN ['spring', 'brand', 'retarget'][1 + i % 3] END AS mkt_campaign,
    CASE WHEN i % 7 = 3 THEN 'newsletter' END AS mkt_source,
    CASE WHEN i % 7 = 3 THEN 'email' END AS mkt_medium,
    CASE WHEN ev = 'struct' THEN 'shop' END AS se_category,
    CASE WHEN ev = 'struct' THEN 'add-to-cart' END AS se_action,
    CASE WHEN ev = 'unstruct' THEN '{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",'
        || '"data":{"schema":"iglu:com.acme/checkout/jsonschema/1-0-0","data":{"step":' || (i % 4) || '}}}' END
        AS unstruct_event,
    '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":'
        || '"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"' || (i // 3) || '"}}]}'
        AS contexts,
    [
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1',
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15',
        'Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36',
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36 Edg/120.0',
        'Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
        'Googlebot/2.1 (+http://www.google.com/bot.html)'
    ][1 + i % 8] AS useragent,
    CASE WHEN ev = 'unstruct' THEN 'com.acme' ELSE 'com.snowplowanalytics.snowplow' END AS event_vendor,
    CASE WHEN ev = 'unstruct' THEN 'checkout' ELSE ev END AS event_name,
    'jsonschema' AS event_format,
    '1-0-0' AS event_version,
    '' AS event_fingerprint_key,
    ts + INTERVAL 3 SECOND AS load_tstamp
FROM (
    SELECT i,
        TIMESTAMP '$END' - to_microseconds(CAST((i * 2654435761) % ($DAYS * 86400000000) AS BIGINT)) AS ts,
        CASE WHEN i % 10 < 4 THEN 'page_view' WHEN i % 10 < 8 THEN 'page_ping'
             WHEN i % 10 = 8 THEN 'struct' ELSE 'unstruct' END AS ev
    FROM range($N) t(i)
)
"""
_FILL_BAD = """
INSERT INTO atomic.bad_rows
SELECT 'hash-' || i, 'iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0',
    TIMESTAMP '$END' - to_microseconds(CAST((i * 2654435761) % ($DAYS * 86400000000) AS BIGINT)),
    'plowline-enrich-0.1.0',
    '{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0","data":{'
        || '"processor":{"artifact":"plowline-enrich","version":"0.1.0"},"failure":{"timestamp":"2024-05-01T00:00:00Z",'
        || '"messages":[{"schemaKey":"iglu:com.acme/checkout/jsonschema/1-0-0","error":{"error":"ValidationError",'
        || '"dataReports":[{"message":"$.step: string found, integer expected","path":"$.step"}]}}]},'
        || '"payload":{"raw":{"vendor":"com.snowplowanalytics.snowplow","version":"tp2","parameters":[]}}}}',
    TIMESTAMP '$END'
FROM range($N) t(i)
"""


def build(path: Path, events: int) -> float:
    started = time.perf_counter()
    con = duckdb.connect(os.fspath(path))
    migrate(con)
    end = END.replace(tzinfo=None).isoformat(" ")
    for template, count in ((_FILL, events), (_FILL_BAD, max(1, events // 100))):
        con.execute(template.replace("$END", end).replace("$DAYS", str(DAYS)).replace("$N", str(count)))
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: An endpoint to time: (method, path, query parameters for a GET or the JSON body of a POST).
Call = tuple[str, str, Any]


def endpoints(client: httpx.Client) -> dict[str, Call]:
    month = {"from": "2024-05-02T00:00:00Z", "to": END.isoformat().replace("+00:00", "Z")}
    day = {"from": "2024-05-31T00:00:00Z", "to": month["to"]}
    feed = client.get("/dashboard/api/events", params={"status": "good", "limit": "1"}).json()["items"]
    bad = client.get("/dashboard/api/events", params={"status": "bad", "limit": "1"}).json()["items"]
    buckets = [{"start": f"2024-05-{d:02d}T00:00:00Z", "end": f"2024-05-{d + 1:02d}T00:00:00Z"} for d in range(1, 31)]
    gets: dict[str, tuple[str, dict[str, str]]] = {
        "summary 30 days": ("/dashboard/api/summary", month),
        "summary 1 day": ("/dashboard/api/summary", day),
        "timeseries 30 days (by day)": ("/dashboard/api/timeseries", month),
        "timeseries 1 day (by hour)": ("/dashboard/api/timeseries", day),
        "timeseries all (by day)": ("/dashboard/api/timeseries", {}),
        **{f"top {name} 30 days": (f"/dashboard/api/top/{name}", month)
           for name in ("pages", "referrers", "campaigns", "devices", "browsers", "countries")},
        "feed newest 50": ("/dashboard/api/events", {}),
        "feed good, event=struct": ("/dashboard/api/events", {"status": "good", "event": "struct"}),
        "feed app=blog, 1 day": ("/dashboard/api/events", {"app": "blog", **day}),
        "feed schema filter": ("/dashboard/api/events", {"schema": "iglu:com.acme/checkout/jsonschema/1-0-0"}),
        "feed bad rows": ("/dashboard/api/events", {"status": "bad"}),
        "feed page 100 (offset 5000)": ("/dashboard/api/events", {"offset": "5000"}),
        "one event's JSON": (f"/dashboard/api/events/{feed[0]['id']}", {}),
        "one bad row": (f"/dashboard/api/bad/{bad[0]['id']}", {}),
        "filter options": ("/dashboard/api/options", {}),
        "micro/all": ("/micro/all", {}),
        "micro/columns": ("/micro/columns", {}),
    }
    posts: dict[str, dict[str, Any]] = {
        "micro/events newest 50": {"page": 1, "pageSize": 50},
        "micro/events event=struct by app": {"filters": [{"column": "event", "values": ["struct"]}],
                                             "sorting": {"column": "app_id", "desc": False}, "page": 1,
                                             "pageSize": 50},
        "micro/events page 100 of 50": {"page": 100, "pageSize": 50},
        "micro/timeline 30 days": {"buckets": buckets},
        "micro/columnStats 3 columns": {"columns": ["app_id", "event", "page_urlpath"]},
    }
    paths = {"micro/events": "/micro/events", "micro/timeline": "/micro/timeline", "micro/columnStats": "/micro/columnStats"}
    return {
        **{name: ("GET", path, params) for name, (path, params) in gets.items()},
        **{name: ("POST", paths[name.split()[0]], body) for name, body in posts.items()},
    }


def call(client: httpx.Client, method: str, path: str, payload: Any) -> None:
    if method == "GET":
        client.get(path, params=payload).raise_for_status()
    else:
        client.post(path, json=payload).raise_for_status()


def time_endpoints(data_dir: Path, cwd: str, calls: int) -> dict[str, dict[str, float]]:
    """Start `plowline dashboard` on the warehouse and time every endpoint."""
    port = free_port()
    env = {**os.environ, "PLOWLINE_MICRO__ENABLED": "true"}
    env.pop("PLOWLINE_CONFIG", None)
    server = subprocess.Popen([sys.executable, "-m", "plowline", "dashboard", "--data-dir", str(data_dir),
                               "--port", str(port)], cwd=cwd, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/dashboard/api/config").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for name, (method, path, payload) in endpoints(client).items():
                call(client, method, path, payload)  # warm-up
                times = []
                for _ in range(calls):
                    started = time.perf_counter()
                    call(client, method, path, payload)
                    times.append((time.perf_counter() - started) * 1000)
                results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
                print(f"{name:32s} median {results[name]['median_ms']:8.1f} ms   max {results[name]['max_ms']:8.1f} ms",
                      flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--via", default="socket,file", help="socket, file, or both (comma-separated)")
    args = parser.parse_args()
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="plowline-bench-dashboard-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        build_s = build(data_dir / "warehouse.duckdb", args.events)
        size_mib = (data_dir / "warehouse.duckdb").stat().st_size / 2**20
        print(f"warehouse: {args.events:,} events, {args.events // 100:,} bad rows, {size_mib:.0f} MiB, "
              f"built in {build_s:.1f} s", flush=True)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for via in args.via.split(","):
            server = None
            if via == "socket":
                con = duckdb.connect(os.fspath(data_dir / "warehouse.duckdb"))
                server = QueryServer(con, query_socket_path(data_dir / "warehouse.duckdb"))
                server.start()
            try:
                print(f"--- via {via}", flush=True)
                results[via] = time_endpoints(data_dir, tmp, args.calls)
            finally:
                if server is not None:
                    server.stop()
                    con.close()
    out = Path(__file__).resolve().parent / "results" / f"dashboard_api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    record: dict[str, Any] = {"benchmark": "dashboard_api", "events": args.events, "bad_rows": args.events // 100,
                              "calls": args.calls, "warehouse_mib": round(size_mib), "build_s": round(build_s, 1),
                              "endpoints": results, "machine": facts}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
