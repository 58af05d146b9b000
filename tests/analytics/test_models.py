"""The data models on DuckDB and PostgreSQL: hand-built sessions with known page views, engaged times and
attribution; running twice changes nothing; late events; and DuckDB while another process's loader holds it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from plowline.analytics.query import QueryError, ask_query_socket, query_socket_path, run_query, warehouse_path
from plowline.analytics.runner import MODELS, ModelsError, ModelsRun, model_statements, resolve_target, run_models
from plowline.config import Settings
from plowline.event import EnrichedEvent
from plowline.storage.duckdb import open_duckdb_loader
from plowline.storage.duckdb_queries import check_derived_script
from tests.support.collector_process import free_port
from tests.support.plowline_cli import PlowlineProcess, run_plowline

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a multiple of the 10 s heartbeat: windows start at T0, T0+10 s, …
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"


class Events:
    """Builds enriched events with distinct ids."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, event: str, session: str | None, page_view: str | None, at: timedelta, user: str = "u1", **fields: Any
    ) -> EnrichedEvent:
        self.count += 1
        moment = T0 + at
        values: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=self.count, version=4)),
            "collector_tstamp": moment,
            "derived_tstamp": moment,
            "dvce_created_tstamp": moment,
            "v_collector": "ssc-3.2.0-kinesis",
            "v_etl": "enrich-kinesis-6.1.0",
            "event": event,
            "event_name": event,
            "event_fingerprint": f"fingerprint-{self.count}",
            "platform": "web",
            "app_id": "site",
            "domain_userid": user,
            "domain_sessionid": session,
            "contexts": [{"schema": WEB_PAGE, "data": {"id": page_view}}] if page_view else None,
            "doc_width": 1000,
            "doc_height": 2000,
            "br_viewwidth": 1000,
            "br_viewheight": 500,
        }
        return EnrichedEvent(**{**values, **fields})


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def first_batch(new: Events) -> list[EnrichedEvent]:
    """Two users, three sessions; the expected results are in EXPECTED_* below."""
    return [
        # u1, session s1: two page views, the first with pings and scrolling, from an e-mail campaign.
        new("page_view", "s1", "pv1", s(0), page_url="https://shop.test/", page_urlpath="/", mkt_source="newsletter",
            mkt_medium="email", mkt_campaign="spring", refr_source="Gmail", refr_medium="email"),
        new("page_ping", "s1", "pv1", s(5), pp_yoffset_max=700, pp_xoffset_max=0),
        new("page_ping", "s1", "pv1", s(15), pp_yoffset_max=1200, pp_xoffset_max=0),
        new("page_ping", "s1", "pv1", s(16), pp_yoffset_max=900),  # same heartbeat window as the one at 15 s
        new("page_ping", "s1", "pv1", s(25), pp_yoffset_max=5000),  # past the document: kept within it
        new("page_view", "s1", "pv2", s(40), page_url="https://shop.test/pricing", page_urlpath="/pricing",
            doc_height=1000),
        new("page_view", "s1", "pv2", s(41), page_url="https://shop.test/pricing?dup", doc_height=1000),  # a duplicate
        # u1, session s2 a day later: one page view from a search engine, one ping.
        new("page_view", "s2", "pv3", timedelta(days=1), page_url="https://shop.test/blog", page_urlpath="/blog",
            page_referrer="https://www.google.com/", refr_urlhost="www.google.com", refr_source="Google",
            refr_medium="search", user_id="alice@example.com"),
        new("page_ping", "s2", "pv3", timedelta(days=1, seconds=5)),
        # u2, session s3: direct, one page view without pings; the rest is not part of any page view.
        new("page_view", "s3", "pv4", timedelta(hours=2), user="u2", page_url="https://shop.test/about",
            page_urlpath="/about"),
        new("struct", "s3", None, timedelta(hours=2, seconds=3), user="u2", se_category="c", se_action="a"),
        new("page_ping", "s3", None, timedelta(hours=2, seconds=6), user="u2"),  # no web_page context
        new("page_view", None, "pv-nosession", timedelta(hours=3), user="u3"),  # no session
    ]


T = datetime(2024, 5, 1, 12, 0)  # naive UTC, as stored

# (page_view_id, session, index in session, start, end, pings, engaged s, absolute s, v px, v %, h %, url)
EXPECTED_PAGE_VIEWS = [
    # pings in windows 0, 1, 1, 2 → 3 windows: 10 * (3 - 1) + 5; the 5000 px offset is kept within the 2000 px page
    ("pv1", "s1", 1, T, T + s(25), 4, 25, 25, 2000, 100, 100, "https://shop.test/"),
    ("pv2", "s1", 2, T + s(40), T + s(40), 0, 0, 0, 0, 50, 100, "https://shop.test/pricing"),
    ("pv3", "s2", 1, T + timedelta(days=1), T + timedelta(days=1, seconds=5), 1, 5, 5, 0, 25, 100,
     "https://shop.test/blog"),
    ("pv4", "s3", 1, T + timedelta(hours=2), T + timedelta(hours=2), 0, 0, 0, 0, 25, 100, "https://shop.test/about"),
]
# (session, user, start, end, page views, engaged, bounce, landing, exit, source, medium, campaign)
EXPECTED_SESSIONS = [
    ("s1", "u1", T, T + s(40), 2, 25, False, "/", "/pricing", "newsletter", "email", "spring"),
    ("s2", "u1", T + timedelta(days=1), T + timedelta(days=1, seconds=5), 1, 5, True, "/blog", "/blog", "Google",
     "search", None),
    ("s3", "u2", T + timedelta(hours=2), T + timedelta(hours=2), 1, 0, True, "/about", "/about", "(direct)", "(none)",
     None),
]
# (user, user_id, first seen, last seen, sessions, page views, engaged, first session, first source, medium, campaign)
EXPECTED_USERS = [
    ("u1", "alice@example.com", T, T + timedelta(days=1, seconds=5), 2, 3, 30, "s1", "newsletter", "email", "spring"),
    ("u2", None, T + timedelta(hours=2), T + timedelta(hours=2), 1, 1, 0, "s3", "(direct)", "(none)", None),
]

PAGE_VIEWS_SQL = (
    "SELECT page_view_id, domain_sessionid, page_view_in_session_index, start_tstamp, end_tstamp, page_pings,"
    " engaged_time_in_s, absolute_time_in_s, vertical_pixels_scrolled, vertical_percentage_scrolled,"
    " horizontal_percentage_scrolled, page_url FROM derived.page_views ORDER BY page_view_id"
)
SESSIONS_SQL = (
    "SELECT domain_sessionid, domain_userid, start_tstamp, end_tstamp, page_views, engaged_time_in_s, is_bounce,"
    " landing_page_urlpath, exit_page_urlpath, source, medium, campaign FROM derived.sessions ORDER BY 1"
)
USERS_SQL = (
    "SELECT domain_userid, user_id, first_seen, last_seen, sessions, page_views, engaged_time_in_s, first_session_id,"
    " first_source, first_medium, first_campaign FROM derived.users ORDER BY 1"
)


# --- the warehouses under test --------------------------------------------------------------------------


@dataclass
class Warehouse:
    """One isolated warehouse: events go in through the real loader, the models run on it."""

    name: str
    settings: Settings
    events: Events = field(default_factory=Events)

    async def load(self, events: list[EnrichedEvent]) -> None:
        loader = self._open_loader()
        try:
            await loader.write([event.to_tsv().encode() for event in events])
        finally:
            await loader.close()

    def _open_loader(self) -> Any:
        if self.name == "postgres":
            from plowline.storage.postgres import open_postgres_loader

            return open_postgres_loader(self.settings, "enriched")
        return open_duckdb_loader(self.settings, "enriched")

    def run(self, **options: Any) -> ModelsRun:
        return run_models(self.settings, target=self.name, **options)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.name == "postgres":
            import psycopg

            with psycopg.connect(self.settings.storage.postgres.dsn) as conn:
                return [tuple(row) for row in conn.execute(sql.encode()).fetchall()]
        return run_query(self.settings, sql)[1]

    def execute(self, sql: str) -> None:
        """A write on atomic.events, as a test's stand-in for what time or another loader does."""
        if self.name == "postgres":
            import psycopg

            with psycopg.connect(self.settings.storage.postgres.dsn, autocommit=True) as conn:
                conn.execute(sql.encode())
            return
        with duckdb.connect(str(warehouse_path(self.settings))) as con:
            con.execute(sql)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return {model: self.rows(f"SELECT * FROM derived.{model} ORDER BY 1, 2, 3") for model in MODELS}


@pytest.fixture(params=["duckdb", "postgres"])
async def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Warehouse]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_database")
        settings = Settings.model_validate(
            {"data_dir": str(tmp_path), "storage": {"loaders": ["postgres"], "postgres": {"dsn": dsn}}}
        )
    else:
        settings = Settings.model_validate({"data_dir": str(tmp_path)})
    yield Warehouse(request.param, settings)


def _with_lookback(warehouse: Warehouse, seconds: int) -> None:
    warehouse.settings = warehouse.settings.model_copy(
        update={"models": warehouse.settings.models.model_copy(update={"lookback_window_s": seconds})}
    )


# --- results --------------------------------------------------------------------------------------------


async def test_page_views_sessions_and_users_are_as_worked_out_by_hand(warehouse: Warehouse) -> None:
    await warehouse.load(first_batch(warehouse.events))

    result = warehouse.run()

    assert [(c.model, c.rows, c.rebuilt) for c in result.counts] == [
        ("page_views", 4, 4), ("sessions", 3, 3), ("users", 2, 2)
    ]
    assert warehouse.rows(PAGE_VIEWS_SQL) == EXPECTED_PAGE_VIEWS
    assert warehouse.rows(SESSIONS_SQL) == EXPECTED_SESSIONS
    assert warehouse.rows(USERS_SQL) == EXPECTED_USERS


async def test_heartbeat_and_minimum_visit_length_come_from_the_config(warehouse: Warehouse) -> None:
    warehouse.settings = warehouse.settings.model_copy(
        update={"models": warehouse.settings.models.model_copy(update={"heartbeat_s": 30, "min_visit_length_s": 3})}
    )
    await warehouse.load(first_batch(warehouse.events))
    warehouse.run()
    # pv1's pings at 5, 15, 16 and 25 s all fall in the first 30 s window: 30 * (1 - 1) + 3.
    assert warehouse.rows("SELECT page_view_id, engaged_time_in_s FROM derived.page_views ORDER BY 1") == [
        ("pv1", 3), ("pv2", 0), ("pv3", 3), ("pv4", 0)
    ]


async def test_running_twice_changes_nothing_and_matches_a_full_refresh(warehouse: Warehouse) -> None:
    await warehouse.load(first_batch(warehouse.events))
    warehouse.run()
    first = warehouse.snapshot()

    again = warehouse.run()
    assert warehouse.snapshot() == first
    assert [(c.model, c.rows) for c in again.counts] == [("page_views", 4), ("sessions", 3), ("users", 2)]

    warehouse.run(full_refresh=True)
    assert warehouse.snapshot() == first
    runs = warehouse.rows("SELECT full_refresh, sessions_rebuilt FROM derived.plowline_models_manifest ORDER BY run_at")
    assert runs == [(False, 3), (False, 3), (True, 3)]


async def test_late_events_are_picked_up_and_only_their_sessions_rebuilt(warehouse: Warehouse) -> None:
    new = warehouse.events
    _with_lookback(warehouse, 0)  # so that the second run rebuilds only what the late events touch
    await warehouse.load(first_batch(new))
    warehouse.run()
    before = warehouse.snapshot()

    # A ping for pv4 that arrives hours late (old collector_tstamp, new load_tstamp), and a new
    # session of u2 from a campaign.
    await warehouse.load([
        new("page_ping", "s3", "pv4", timedelta(hours=2, seconds=12), user="u2", pp_yoffset_max=1500),
        new("page_view", "s4", "pv5", timedelta(days=2), user="u2", page_urlpath="/sale", mkt_source="ads",
            mkt_medium="cpc", mkt_campaign="sale"),
    ])
    result = warehouse.run()

    assert [(c.model, c.rows, c.rebuilt) for c in result.counts] == [
        ("page_views", 5, 2), ("sessions", 4, 2), ("users", 2, 1)
    ]
    assert warehouse.rows(
        "SELECT page_view_id, page_pings, engaged_time_in_s, vertical_percentage_scrolled FROM derived.page_views"
        " WHERE domain_userid = 'u2' ORDER BY 1"
    ) == [("pv4", 1, 5, 100), ("pv5", 0, 0, 25)]
    assert warehouse.rows(USERS_SQL)[1] == (
        "u2", None, T + timedelta(hours=2), T + timedelta(days=2), 2, 2, 5, "s3", "(direct)", "(none)", None
    )
    after = warehouse.snapshot()
    assert [row for row in after["sessions"] if row[0] in ("s1", "s2")] == [
        row for row in before["sessions"] if row[0] in ("s1", "s2")
    ]
    assert after["users"][0] == before["users"][0]  # u1 untouched


async def test_the_lookback_window_catches_a_batch_committed_behind_the_high_water_mark(warehouse: Warehouse) -> None:
    new = warehouse.events
    await warehouse.load(first_batch(new))
    warehouse.run()
    # A batch whose load_tstamp is a minute before the high-water mark, as when a loader stamped it
    # before the run and committed after it.
    await warehouse.load([new("page_ping", "s3", "pv4", timedelta(hours=2, seconds=5), user="u2")])
    warehouse.execute(
        "UPDATE atomic.events SET load_tstamp = (SELECT max(high_water_load_tstamp) FROM derived.plowline_models_manifest)"
        " - INTERVAL '60 seconds' WHERE load_tstamp > (SELECT max(high_water_load_tstamp) FROM"
        " derived.plowline_models_manifest)"
    )

    _with_lookback(warehouse, 0)  # no lookback: missed
    warehouse.run()
    assert warehouse.rows("SELECT engaged_time_in_s FROM derived.page_views WHERE page_view_id = 'pv4'") == [(0,)]

    _with_lookback(warehouse, 600)  # ten minutes: caught
    warehouse.run()
    assert warehouse.rows("SELECT engaged_time_in_s FROM derived.page_views WHERE page_view_id = 'pv4'") == [(5,)]


async def test_no_page_views_gives_empty_models(warehouse: Warehouse) -> None:
    new = warehouse.events
    await warehouse.load([new("struct", "s9", None, s(0), se_category="c", se_action="a")])
    result = warehouse.run()
    assert [(c.model, c.rows) for c in result.counts] == [("page_views", 0), ("sessions", 0), ("users", 0)]


def _postgres_warehouse(tmp_path: Path, dsn: str) -> Warehouse:
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "storage": {"loaders": ["postgres"], "postgres": {"dsn": dsn}}}
    )
    return Warehouse("postgres", settings)


async def test_on_postgres_a_run_first_summarizes_the_new_brin_ranges(tmp_path: Path, postgres_database: str) -> None:
    """Unsummarized BRIN ranges are always read: the run summarizes them, so its load_tstamp scans stay small."""
    warehouse = _postgres_warehouse(tmp_path, postgres_database)
    new = warehouse.events
    # Enough rows to fill more than the first range of 128 pages, which the index summarizes from the start.
    await warehouse.load([new("struct", f"bulk{n}", None, s(n), se_category="bulk", se_label=uuid.uuid4().hex * 25)
                          for n in range(2500)])
    assert warehouse.rows("SELECT pg_relation_size('atomic.events') / current_setting('block_size')::int")[0][0] > 256
    await warehouse.load(first_batch(new))
    warehouse.run()
    assert warehouse.rows(
        "SELECT brin_summarize_new_values('atomic.events_load_tstamp_brin'),"
        " brin_summarize_new_values('atomic.events_collector_tstamp_brin')"
    ) == [(0, 0)]  # nothing was left to summarize


async def test_on_postgres_a_role_that_does_not_own_events_can_still_run_the_models(
    tmp_path: Path, postgres_database: str
) -> None:
    """Summarizing needs the table's owner; a reporting role that may only read atomic.events runs without it."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    owner = _postgres_warehouse(tmp_path, postgres_database)
    await owner.load(first_batch(owner.events))
    role = f"plowline_models_reader_{uuid.uuid4().hex[:8]}"
    database = conninfo_to_dict(postgres_database)["dbname"]
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(str(database)),
                                                                        sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA atomic TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON atomic.events TO {}").format(sql.Identifier(role)))
    try:
        reader = _postgres_warehouse(tmp_path, make_conninfo(postgres_database, user=role))
        result = reader.run()
        assert [(c.model, c.rows) for c in result.counts] == [("page_views", 4), ("sessions", 3), ("users", 2)]
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(
    ("loaders", "configured", "given", "expected"),
    [
        (["files", "duckdb"], "auto", None, "duckdb"),
        (["files", "postgres"], "auto", None, "postgres"),
        (["duckdb", "postgres"], "auto", None, "duckdb"),
        (["files"], "auto", None, "duckdb"),
        (["duckdb"], "postgres", None, "postgres"),
        (["postgres"], "auto", "duckdb", "duckdb"),
    ],
)
def test_the_target_is_the_option_else_the_config_else_the_loader_in_use(
    loaders: list[str], configured: str, given: str | None, expected: str
) -> None:
    settings = Settings.model_validate({"storage": {"loaders": loaders}, "models": {"target": configured}})
    assert resolve_target(settings, given) == expected


def test_the_same_statements_serve_both_dialects_but_the_json_and_the_table() -> None:
    settings = Settings.model_validate({"storage": {"postgres": {"schema_name": "my events"}}})
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    duck, pg = (model_statements(dialect, settings, run_at=moment) for dialect in ("duckdb", "postgres"))
    assert len(duck) == len(pg)
    assert any('"my events".events' in statement for statement in pg)
    assert not any("atomic.events" in statement for statement in pg)
    assert all("{{" not in statement for statement in duck + pg)
    different = [(a, b) for a, b in zip(duck, pg, strict=True) if a != b]
    assert all("events" in a for a, _ in different)


# --- DuckDB: while a loader in another process holds the file ---------------------------------------------

# A loader in a child process, as `plowline up` runs it: it loads the TSV lines of each file named
# on stdin and answers "written", until stdin closes.
_LOADER = textwrap.dedent("""
    import asyncio, sys
    from plowline.config import Settings
    from plowline.storage.duckdb import open_duckdb_loader

    async def main():
        loader = open_duckdb_loader(Settings.model_validate({"data_dir": sys.argv[1]}), "enriched")
        print("ready", flush=True)
        for line in sys.stdin:
            with open(line.strip(), "rb") as lines:
                await loader.write(lines.read().splitlines())
            print("written", flush=True)
        await loader.close()

    asyncio.run(main())
""")


class LoaderProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.batches = 0
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(data_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == word:
                return
        pytest.fail(f"loader process exited ({self.process.wait()}) without {word!r}")

    def load(self, events: list[EnrichedEvent]) -> None:
        self.batches += 1
        path = self.data_dir / f"batch-{self.batches}.tsv"
        path.write_text("".join(event.to_tsv() + "\n" for event in events), encoding="utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        self._expect("written")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture
def loader_process(tmp_path: Path) -> Iterator[LoaderProcess]:
    process = LoaderProcess(tmp_path)
    try:
        yield process
    finally:
        process.stop()
        if process.process.poll() is None:
            process.process.kill()


def test_models_run_through_the_socket_while_a_loader_holds_the_file(
    tmp_path: Path, loader_process: LoaderProcess
) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    new = Events()
    loader_process.load(first_batch(new))
    with pytest.raises(duckdb.IOException, match="lock"):  # the file really is held
        duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)

    result = run_models(settings)
    assert result.via == "duckdb loader socket"
    assert run_query(settings, PAGE_VIEWS_SQL)[1] == EXPECTED_PAGE_VIEWS
    assert run_query(settings, SESSIONS_SQL)[1] == EXPECTED_SESSIONS
    assert run_query(settings, USERS_SQL)[1] == EXPECTED_USERS

    loader_process.load([new("page_ping", "s3", "pv4", timedelta(hours=2, seconds=12), user="u2")])
    run_models(settings)
    assert run_query(settings, "SELECT engaged_time_in_s FROM derived.sessions WHERE domain_sessionid = 's3'")[1] == [
        (5,)
    ]

    loader_process.stop()  # no loader: the file is opened here
    assert run_models(settings).via == "duckdb file"
    assert run_query(settings, "SELECT count(*) FROM derived.page_views")[1] == [(4,)]


@pytest.mark.parametrize(
    "script",
    [
        "DELETE FROM atomic.events",
        "INSERT INTO derived.t SELECT 1; DROP TABLE atomic.events",
        "CREATE SCHEMA IF NOT EXISTS atomic2",
        "UPDATE atomic.events SET app_id = 'x'",
        "COPY derived.page_views TO 'stolen.csv'",
        "ATTACH 'other.duckdb' AS derived",
        "CREATE TABLE atomic.copy AS SELECT * FROM atomic.events",
    ],
)
def test_the_socket_refuses_a_script_that_writes_outside_derived(
    tmp_path: Path, loader_process: LoaderProcess, script: str
) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    loader_process.load(first_batch(Events()))
    socket_path = query_socket_path(warehouse_path(settings))
    with pytest.raises(QueryError, match="only read, and write schema derived"):
        ask_query_socket(socket_path, {"script": script}, 30)
    assert run_query(settings, "SELECT count(*), count(DISTINCT app_id) FROM atomic.events")[1] == [(13, 1)]
    assert run_query(settings, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'atomic2'")[1] == [
        (0,)
    ]


def test_a_failing_script_changes_nothing(tmp_path: Path, loader_process: LoaderProcess) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    loader_process.load(first_batch(Events()))
    socket_path = query_socket_path(warehouse_path(settings))
    with pytest.raises(QueryError, match="no_such_table"):
        ask_query_socket(socket_path, {"script": "CREATE SCHEMA IF NOT EXISTS derived; CREATE TABLE derived.t (x int);"
                                       " INSERT INTO derived.t SELECT * FROM atomic.no_such_table"}, 30)
    assert run_query(settings, "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'")[1] == [(0,)]


def test_every_model_statement_passes_the_servers_check() -> None:
    statements = model_statements("duckdb", Settings(), full_refresh=True)
    with duckdb.connect() as con:
        assert len(check_derived_script(con, ";\n".join(statements))) == len(statements)


# --- the command ----------------------------------------------------------------------------------------


async def test_plowline_models_run_prints_the_rows_per_model(tmp_path: Path) -> None:
    data = tmp_path / "data"
    warehouse = Warehouse("duckdb", Settings.model_validate({"data_dir": str(data)}))
    await warehouse.load(first_batch(warehouse.events))

    done = run_plowline(["models", "run", "--data-dir", str(data)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "derived.page_views │ 4    │ 4" in done.stdout
    assert "derived.users      │ 2    │ 2" in done.stdout

    done = run_plowline(["query", "--data-dir", str(data), "--format", "csv",
                         "SELECT domain_sessionid, engaged_time_in_s FROM derived.sessions ORDER BY 1"], cwd=tmp_path)
    assert done.stdout == "domain_sessionid,engaged_time_in_s\ns1,25\ns2,5\ns3,0\n"


def test_plowline_models_run_without_a_warehouse_says_how_to_make_one(tmp_path: Path) -> None:
    done = run_plowline(["models", "run", "--data-dir", str(tmp_path / "none")], cwd=tmp_path)
    assert done.returncode == 1
    assert "plowline up" in done.stderr
    with pytest.raises(ModelsError, match=r"storage\.postgres\.dsn"):
        run_models(Settings(), target="postgres")


# --- the schedule under `plowline up` -------------------------------------------------------------------


def _append_enriched(data_dir: Path, events: list[EnrichedEvent]) -> None:
    """Write events into DATA_DIR/streams/enriched, the file log `plowline up`'s loader reads."""
    from plowline.streams import open_sink

    async def write() -> None:
        sink = open_sink(f"file://{data_dir / 'streams' / 'enriched'}")
        try:
            await sink.write([event.to_tsv().encode() for event in events])
        finally:
            await sink.close()

    asyncio.run(write())


def test_models_every_waits_for_the_warehouse_without_failing_and_runs_once_it_exists(tmp_path: Path) -> None:
    """Just after `plowline up` starts there is no warehouse yet: the scheduled run says it will wait (not a
    failure, once), looks again every few seconds instead of a whole interval later, then runs."""
    data = tmp_path / "data"
    models = PlowlineProcess(["models", "run", "--data-dir", str(data), "--every", "600"], tmp_path,
                             tmp_path / "models.log")
    try:
        models.start(lambda: "models will run once the warehouse exists" in models.log(), timeout_s=60)
        settings = Settings.model_validate({"data_dir": str(data)})
        asyncio.run(Warehouse("duckdb", settings).load(first_batch(Events())))
        models.wait_until(lambda: "models run" in models.log().replace("models run failed", ""), 60,
                          "the first run, well before the 600 s interval")
        assert models.stop() == 0, models.log()[-4000:]
    finally:
        models.kill()
    log = models.log()
    assert log.count("models will run once the warehouse exists") == 1
    assert "failed" not in log and "page_views=4" in log, log[-2000:]


@pytest.mark.e2e
def test_plowline_up_runs_the_models_on_a_schedule_while_its_loader_holds_the_warehouse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new = Events()
    _append_enriched(data, first_batch(new))
    settings = Settings.model_validate({"data_dir": str(data)})
    up = PlowlineProcess(
        ["up", "--data-dir", str(data), "--port", str(free_port()), "--enrich-workers", "1"], tmp_path,
        tmp_path / "up.log",
        {"PLOWLINE_MODELS__EVERY_S": "1", "PLOWLINE_DASHBOARD__ENABLED": "false", "PLOWLINE_STORAGE__LOADERS": '["duckdb"]'},
    )

    def page_views(expected: int) -> Callable[[], bool]:
        def check() -> bool:
            try:
                return run_query(settings, "SELECT count(*) FROM derived.page_views")[1] == [(expected,)]
            except QueryError:  # no warehouse or no derived tables yet
                return False
        return check

    try:
        up.start(page_views(4), timeout_s=120)
        assert run_query(settings, SESSIONS_SQL)[1] == EXPECTED_SESSIONS
        _append_enriched(data, [new("page_view", "s4", "pv5", timedelta(days=2), user="u2")])  # the next run has it
        up.wait_until(page_views(5), 120, "running the models again")
        assert up.stop() == 0, up.log()[-4000:]
    finally:
        up.kill()
    assert "models run" in up.log()


def test_models_every_stopped_mid_run_by_sigterm_ends_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`plowline up` stops its models child with SIGTERM. When that lands while DuckDB runs a statement,
    DuckDB's client turns the interrupt into its own error, `RuntimeError("Query interrupted")`, not
    KeyboardInterrupt (seen ending a 10-minute `up` benchmark with exit 1). The schedule must still end
    as a clean stop, and give the SIGTERM handler back. The run here receives a real SIGTERM, and
    answers it as DuckDB's client does."""
    import os
    import signal

    from plowline.analytics import runner
    from plowline.cli.data import _run_models_every

    seen: list[str] = []

    def interrupted_run(settings: Settings, **options: Any) -> ModelsRun:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next instruction
            for _ in range(10_000_000):  # never finishes before it does
                pass
        except KeyboardInterrupt:
            seen.append("interrupted")
            raise RuntimeError("Query interrupted") from None  # what DuckDB raises in its place
        raise AssertionError("the SIGTERM never arrived")

    monkeypatch.setattr(runner, "run_models", interrupted_run)
    before = signal.getsignal(signal.SIGTERM)
    _run_models_every(Settings.model_validate({"data_dir": str(tmp_path)}), None, False, 300)
    assert seen == ["interrupted"]
    assert signal.getsignal(signal.SIGTERM) is before
