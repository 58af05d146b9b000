"""The helpers behind bench/up_latency.py and bench/up_sustained.py, whose figures are only as right as they are.

Percentiles are nearest-rank; the backlog slope is least squares or Theil-Sen; every event id a request carries
maps back to its number (the latency figure pairs a warehouse row with its 200 through it); and the
paced load generator, driven against a real collector, gets exactly one stored record per 200 and
carries exactly the events it numbered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.e2e.support import events_of
from tests.support.collector_process import CollectorProcess

# bench/ holds scripts, not a package: its modules import each other as siblings, so it goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import uplib


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 3.0, 2.0, 1.0], 95, 4.0),
        ([float(v) for v in range(1, 101)], 95, 95.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 101)], 100, 100.0),
        ([float(v) for v in range(1, 101)], 0, 1.0),
    ],
    ids=["one", "p50-even", "p95-unsorted", "p95-of-100", "p99-of-100", "max", "min"],
)
def test_percentile_is_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert uplib.percentile(values, pct) == expected


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        uplib.percentile([], 50)


def test_slope_is_least_squares() -> None:
    assert uplib.slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert uplib.slope([(0.0, 4.0), (1.0, 0.0), (2.0, 4.0), (3.0, 0.0)]) == pytest.approx(-0.8)
    assert uplib.slope([(1.0, 7.0)]) == 0.0
    assert uplib.slope([(1.0, 7.0), (1.0, 9.0)]) == 0.0


def test_robust_slope_ignores_one_spike_but_not_growth() -> None:
    # The second half of a 60 s step at 6,083 events/s, sampled every 2 s (the defaults), with one
    # checkpoint pause late in it: the limit is 2% of the rate, 122 events/s.
    flat_with_spike = [(float(t), 16_000.0 if t in (54, 56) else 200.0) for t in range(30, 61, 2)]
    assert uplib.slope(flat_with_spike) > 122  # least squares is tilted by the one late spike
    assert uplib.robust_slope(flat_with_spike) == 0.0
    growing = [(float(t), 500.0 * t + (9_000.0 if t == 40 else 0.0)) for t in range(30, 61)]
    assert uplib.robust_slope(growing) == pytest.approx(500.0)
    assert uplib.robust_slope([(1.0, 7.0)]) == 0.0
    assert uplib.robust_slope([(1.0, 7.0), (1.0, 9.0)]) == 0.0
    many = [(float(t), 3.0 * t) for t in range(5_000)]
    assert uplib.robust_slope(many) == pytest.approx(3.0)


def test_requests_carry_numbered_event_ids_and_exact_lengths() -> None:
    factory = uplib.RequestFactory(10, "bench-test", templates=4)
    numbers: list[int] = []
    for k in range(9):  # more requests than templates: ids differ even where the template repeats
        head, _, body = factory.request(k).partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length"))
        assert length == len(body)
        events = json.loads(body)["data"]
        assert {event["aid"] for event in events} == {"bench-test"}
        numbers += [factory.counter(event["eid"]) for event in events]
    assert numbers == list(range(90))
    assert factory.counter(uplib.RequestFactory(10, "other").eid(3)) is None


def test_paced_load_is_stored_exactly_once_per_200(collector: CollectorProcess) -> None:
    factory = uplib.RequestFactory(3, "bench-test", templates=8)
    answered: list[int] = []
    result = asyncio.run(uplib.drive(collector.port, factory, 100.0, 0.5, connections=4,
                                     on_ok=lambda k, _at: answered.append(k)))
    assert (result.sent, result.ok, result.failed) == (50, 50, 0)
    assert sorted(answered) == list(range(50))
    records = collector.wait_for_records(50)
    assert len(records) == 50
    numbers = sorted(factory.counter(event["eid"]) for record in records for event in events_of(record))
    assert numbers == list(range(150))
