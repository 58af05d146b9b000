"""DuckDB's own cost per stored event: the CPU DuckDB spends inside INSERT … COMMIT, nothing of Plowline's.

    .venv/bin/python bench/duckdb_floor.py                 # about 3 minutes
    .venv/bin/python bench/duckdb_floor.py --rows 300000 --batch-size 1000

`bench/duckdb_growth.py` times the whole duckdb loader (parsing the TSV into Arrow, staging, the
insert). This script asks what is left when Plowline's part costs nothing: the staged Arrow tables
of every batch are built first (distinct events, the realistic mix of bench/postgres_loader.py),
then only the warehouse's own statement is timed, `INSERT INTO atomic.events BY NAME SELECT * FROM
<stage> ON CONFLICT DO NOTHING` and its COMMIT, in wall time and in CPU time of the process (DuckDB
runs its own threads, so CPU can exceed wall). Two tables, each in a fresh warehouse:

* `keyed`: atomic.events as the migrations create it, with the primary key (event_id,
  event_fingerprint_key) that makes redelivery harmless: what `plowline up` loads into;
* `no key`: the same columns with no constraint and a plain INSERT: DuckDB's floor for appending
  these rows, which no loader that keeps events exactly once can go below.

Figures per 100,000 rows (the key's index grows with the table), with the checkpoint threshold and
the threads the loader sets by default (256 MiB, 1 thread; `--threads N` to compare). The budget it is compared with: `plowline up` sustaining 11,600 events/s on
2 cores leaves 172 µs of CPU per event for the collector, enrich and every loader together.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import machine_facts
from duckdb_growth import batches  # a sibling script, not a package

from plowline.storage.duckdb import _INSERT_EVENTS, _events_stage, migrate
from plowline.storage.parquet import enriched_table

RESULTS_DIR = Path(__file__).parent / "results"
_STEP = 100_000
_STAGE = "plowline_events_stage"
_UNKEYED_INSERT = f"INSERT INTO atomic.events_unkeyed BY NAME SELECT * FROM {_STAGE}"


def staged_batches(rows: int, batch_size: int) -> list[pa.Table]:
    """`rows` distinct events as the loader stages them, in batches."""
    now = datetime.now(UTC)
    out = []
    for lines in batches(rows, batch_size):
        converted = enriched_table(lines)
        if converted.rejected:
            raise SystemExit(f"the generator made {len(converted.rejected)} lines the loader rejects")
        out.append(_events_stage(converted.table, now))
    return out


def run(variant: str, batches: list[pa.Table], threads: int) -> list[dict[str, float]]:
    """Insert every batch into a fresh warehouse; CPU and wall µs per row of each 100,000 rows."""
    with tempfile.TemporaryDirectory(prefix="plowline-bench-duckdb-floor-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "warehouse.duckdb"))
        con.execute("SET checkpoint_threshold = '256MiB'")
        con.execute(f"SET threads = {int(threads)}")
        migrate(con)
        statement = _INSERT_EVENTS
        if variant == "no key":
            con.execute("CREATE TABLE atomic.events_unkeyed AS SELECT * FROM atomic.events LIMIT 0")
            statement = _UNKEYED_INSERT
        steps: list[dict[str, float]] = []
        cpu = wall = 0.0
        rows = 0
        for table in batches:
            con.register(_STAGE, table)
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            con.begin()
            con.execute(statement)
            con.commit()
            cpu += time.process_time() - cpu_start
            wall += time.perf_counter() - wall_start
            con.unregister(_STAGE)
            rows += table.num_rows
            if rows % _STEP == 0:
                steps.append({"rows": rows, "cpu_us_per_row": cpu / _STEP * 1e6, "wall_us_per_row": wall / _STEP * 1e6})
                print(f"  {variant:<7} {rows:>9,} rows  {steps[-1]['cpu_us_per_row']:6.1f} µs CPU/row  "
                      f"{steps[-1]['wall_us_per_row']:6.1f} µs wall/row  ({_STEP / wall:,.0f} rows/s)", flush=True)
                cpu = wall = 0.0
        table_name = "atomic.events_unkeyed" if variant == "no key" else "atomic.events"
        row = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {table_name}").fetchone()
        con.close()
    expected = sum(table.num_rows for table in batches)
    if row is None or row[0] != expected or row[1] != expected:
        raise SystemExit(f"FAILED: {variant}: {row} stored, {expected} expected, each once")
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="a multiple of 100,000")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1,
                        help="DuckDB's threads (default 1, the loader's storage.duckdb.threads default)")
    args = parser.parse_args()
    if args.rows % _STEP or _STEP % args.batch_size:
        parser.error("--rows must be a multiple of 100,000 and --batch-size divide 100,000")
    print(f"staging {args.rows:,} events in batches of {args.batch_size:,} (not timed)…", flush=True)
    batches = staged_batches(args.rows, args.batch_size)
    results = {variant: run(variant, batches, args.threads) for variant in ("keyed", "no key")}
    print("\n| table | first 100k: CPU µs/row | last 100k: CPU µs/row | median | of a 172 µs budget |")
    print("|---|---|---|---|---|")
    summary = {}
    for variant, steps in results.items():
        cpus = [step["cpu_us_per_row"] for step in steps]
        median = statistics.median(cpus)
        summary[variant] = median
        print(f"| {variant} | {cpus[0]:.1f} | {cpus[-1]:.1f} | {median:.1f} | {median / 172:.0%} |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"duckdb_floor-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"rows": args.rows, "batch_size": args.batch_size, "threads": args.threads, "steps": results,
                               "median_cpu_us_per_row": summary, "machine": machine_facts()}, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
