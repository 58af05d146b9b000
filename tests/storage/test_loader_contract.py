"""The Loader contract of `plowline.storage.base`, checked against every loader in `loader_factory`."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from plowline.errors import TransportError
from plowline.event import FIELD_NAMES
from plowline.storage import rows
from plowline.streams import Sink

from .conftest import LoaderFactory, bad_rows, expected_enriched, full_event, minimal_event, tsv


def _ids(rows: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((row["event_id"], row["event_fingerprint"]) for row in rows)


def _canonical(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _assert_same_typed_values(stored: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal values of the same Python type, field by field (so 1 is not True, nor 39.9 a Decimal)."""
    assert set(stored) == set(FIELD_NAMES)
    for name in FIELD_NAMES:
        got, want = stored[name], expected[name]
        assert type(got) is type(want), f"{name}: {got!r} is a {type(got).__name__}, not a {type(want).__name__}"
        assert got == want, f"{name}: stored {got!r}, wrote {want!r}"
        if isinstance(want, datetime):
            assert got.utcoffset() == want.utcoffset(), name


# --- the protocol ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["enriched", "bad"])
async def test_a_loader_is_a_sink_with_a_name_and_a_kind(loader_factory: LoaderFactory, kind: Any) -> None:
    loader = loader_factory.open(kind)
    assert isinstance(loader, Sink)
    assert loader.name == loader_factory.name
    assert loader.kind == kind
    assert loader.max_record_bytes > 0
    assert loader.healthy()


# --- round trip -----------------------------------------------------------------------------------


async def test_all_131_fields_round_trip_with_their_types(loader_factory: LoaderFactory) -> None:
    event = full_event()
    loader = loader_factory.open("enriched")
    await loader.write(tsv(event))

    [stored] = loader_factory.read_enriched()
    _assert_same_typed_values(stored, expected_enriched(event))


async def test_an_event_with_only_the_required_fields_reads_back_with_nulls(loader_factory: LoaderFactory) -> None:
    event = minimal_event(event_fingerprint=None)
    loader = loader_factory.open("enriched")
    await loader.write(tsv(event))

    [stored] = loader_factory.read_enriched()
    _assert_same_typed_values(stored, expected_enriched(event))
    assert sum(value is not None for value in stored.values()) == 4


async def test_decimals_keep_their_value(loader_factory: LoaderFactory) -> None:
    values = {"se_value": Decimal("0.000001"), "tr_total": Decimal("99999999.99"), "ti_price": Decimal("-0.5")}
    loader = loader_factory.open("enriched")
    await loader.write(tsv(minimal_event(0, **values)))

    [stored] = loader_factory.read_enriched()
    assert {name: stored[name] for name in values} == values


async def test_a_trailing_newline_is_not_part_of_the_record(loader_factory: LoaderFactory) -> None:
    event = full_event()
    loader = loader_factory.open("enriched")
    await loader.write([event.to_tsv().encode() + b"\n"])

    [stored] = loader_factory.read_enriched()
    _assert_same_typed_values(stored, expected_enriched(event))


async def test_many_events_in_one_write(loader_factory: LoaderFactory) -> None:
    events = [minimal_event(number, app_id=f"app-{number}") for number in range(2500)]
    loader = loader_factory.open("enriched")
    await loader.write(tsv(*events))

    stored = loader_factory.read_enriched()
    assert len(stored) == 2500
    assert {row["app_id"] for row in stored} == {f"app-{number}" for number in range(2500)}


# --- idempotency ----------------------------------------------------------------------------------


async def test_a_redelivered_batch_leaves_no_duplicates(loader_factory: LoaderFactory) -> None:
    batch = tsv(*(minimal_event(number) for number in range(10)))
    loader = loader_factory.open("enriched")
    await loader.write(batch)
    await loader.write(batch)

    assert _ids(loader_factory.read_enriched()) == Counter(
        {(minimal_event(number).event_id, f"fingerprint-{number}"): 1 for number in range(10)}
    )


async def test_a_batch_overlapping_an_earlier_one_adds_only_the_new_events(loader_factory: LoaderFactory) -> None:
    loader = loader_factory.open("enriched")
    await loader.write(tsv(*(minimal_event(number) for number in range(0, 10))))
    await loader.write(tsv(*(minimal_event(number) for number in range(5, 15))))

    ids = _ids(loader_factory.read_enriched())
    assert len(ids) == 15
    assert set(ids.values()) == {1}


async def test_duplicates_within_one_batch_are_stored_once(loader_factory: LoaderFactory) -> None:
    events = [minimal_event(1), minimal_event(2), minimal_event(1), minimal_event(2), minimal_event(1)]
    loader = loader_factory.open("enriched")
    await loader.write(tsv(*events))

    assert sorted(_ids(loader_factory.read_enriched()).values()) == [1, 1]


async def test_redelivery_to_a_new_loader_after_a_restart_leaves_no_duplicates(loader_factory: LoaderFactory) -> None:
    batch = tsv(*(minimal_event(number) for number in range(6)))
    first = loader_factory.open("enriched")
    await first.write(batch)
    await first.close()

    restarted = loader_factory.open("enriched")
    await restarted.write(batch[3:] + tsv(minimal_event(6)))

    ids = _ids(loader_factory.read_enriched())
    assert len(ids) == 7
    assert set(ids.values()) == {1}


async def test_the_same_event_id_with_another_fingerprint_is_another_event(loader_factory: LoaderFactory) -> None:
    loader = loader_factory.open("enriched")
    original = minimal_event(1, event_fingerprint="aaaa")
    await loader.write(tsv(original, minimal_event(1, event_fingerprint="bbbb")))
    await loader.write(tsv(minimal_event(1, event_fingerprint=None), original))
    await loader.write(tsv(minimal_event(1, event_fingerprint=None)))

    assert _ids(loader_factory.read_enriched()) == Counter(
        {(original.event_id, "aaaa"): 1, (original.event_id, "bbbb"): 1, (original.event_id, None): 1}
    )


# --- bad rows -------------------------------------------------------------------------------------


async def test_bad_rows_are_stored_whole(loader_factory: LoaderFactory) -> None:
    rows = bad_rows(4)
    loader = loader_factory.open("bad")
    await loader.write(rows)

    stored = loader_factory.read_bad()
    assert sorted(map(_canonical, stored)) == sorted(_canonical(orjson.loads(row)) for row in rows)


async def test_redelivered_bad_rows_are_stored_once(loader_factory: LoaderFactory) -> None:
    loader = loader_factory.open("bad")
    await loader.write(bad_rows(3))
    await loader.write(bad_rows(3) + bad_rows(2, start=3) + bad_rows(1, start=4))

    stored = loader_factory.read_bad()
    assert len(stored) == 5
    assert len(set(map(_canonical, stored))) == 5


async def test_enriched_and_bad_loaders_share_a_store_without_mixing(loader_factory: LoaderFactory) -> None:
    await loader_factory.open("enriched").write(tsv(minimal_event(1)))
    await loader_factory.open("bad").write(bad_rows(1))

    assert len(loader_factory.read_enriched()) == 1
    assert len(loader_factory.read_bad()) == 1


# --- edges and failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["enriched", "bad"])
async def test_an_empty_write_is_a_no_op(loader_factory: LoaderFactory, kind: Any) -> None:
    loader = loader_factory.open(kind)
    await loader.write([])

    assert loader.healthy()
    assert loader_factory.read_enriched() == []
    assert loader_factory.read_bad() == []


@pytest.mark.parametrize("kind", ["enriched", "bad"])
async def test_a_write_while_the_store_is_down_raises_transport_error_then_recovers(
    loader_factory: LoaderFactory, kind: Any
) -> None:
    if loader_factory.outage is None:
        pytest.skip(f"{loader_factory.name}: no way to make its store unavailable in a test")
    batch = tsv(*(minimal_event(number) for number in range(5))) if kind == "enriched" else bad_rows(5)
    read = loader_factory.read_enriched if kind == "enriched" else loader_factory.read_bad
    loader = loader_factory.open(kind)
    await loader.write(batch[:2])

    with loader_factory.outage():
        for _ in range(2):  # and keeps failing, not acknowledging, while the store is down
            with pytest.raises(TransportError):
                await loader.write(batch[2:])
            assert not loader.healthy()

    await loader.write(batch[1:])  # the retry, overlapping what was stored before the outage
    assert loader.healthy()
    assert len(read()) == 5


# --- the shared row conversion of typed loaders (plowline.storage.rows) -----------------------------


def test_enriched_row_gives_typed_values_and_the_tsv_json_text() -> None:
    event = full_event()
    line = event.to_tsv()
    row = rows.enriched_row(line.encode() + b"\n")

    assert len(row) == 131
    columns = line.split("\t")
    for index, (name, value) in enumerate(zip(FIELD_NAMES, row, strict=True)):
        if index in rows.JSON_COLUMNS:
            assert value == columns[index], name  # the whole self-describing JSON, as the TSV holds it
        else:
            assert value == getattr(event, name) and type(value) is type(getattr(event, name)), name
    assert orjson.loads(row[rows.JSON_COLUMNS[0]])["schema"].endswith("/contexts/jsonschema/1-0-1")
    assert (row[rows.EVENT_ID], row[rows.EVENT_FINGERPRINT]) == (event.event_id, event.event_fingerprint)


@pytest.mark.parametrize(
    ("line", "failure_type"),
    [(b"no tabs", "NotTSV"), (b"a\tb", "FieldNumberMismatch"), (b"\t" * 130 + b"\xff", "RowDecodingError")],
)
def test_enriched_row_refuses_what_is_not_an_event_with_a_bad_row(line: bytes, failure_type: str) -> None:
    with pytest.raises(rows.RowError) as caught:
        rows.enriched_row(line)
    bad = orjson.loads(caught.value.bad_row)
    assert bad["schema"] == rows.LOADER_PARSING_ERROR
    assert bad["data"]["failure"]["type"] == failure_type
    assert bad["data"]["processor"] == {"artifact": "plowline-storage", "version": "0.1.0"}


def test_bad_row_extracts_what_to_query_by_and_hashes_the_line() -> None:
    [line] = bad_rows(1)
    stored = rows.bad_row(line + b"\n")
    assert stored.schema.endswith("/size_violation/jsonschema/1-0-0")
    assert stored.failure_tstamp is not None and stored.failure_tstamp.utcoffset() is not None
    assert stored.processor == "plowline-test-0.1.0"
    assert stored.row_hash == rows.bad_row(line).row_hash != rows.bad_row(bad_rows(1, start=2)[0]).row_hash
    assert orjson.loads(stored.data) == orjson.loads(line)
    assert rows.bad_row(b"\x00 not json").schema.endswith("/generic_error/jsonschema/1-0-0")


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_column_types_cover_the_131_fields(dialect: Any) -> None:
    types = rows.column_types(dialect)
    assert [name for name, _ in types] == list(FIELD_NAMES)
    assert all(kind for _, kind in types)
