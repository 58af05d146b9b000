"""Unit tests of the Python tracker: payload encoding, retry verdicts and backoff, the bounded buffers, emitters
against an in-process HTTP double (httpx.MockTransport), thread safety, and an import without side effects."""

from __future__ import annotations

import base64
import json
import logging
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.enrich.transform import decode_base64_json
from plowline.trackers.python import (
    AsyncEmitter,
    BufferLocked,
    Emitter,
    MemoryBuffer,
    PageView,
    RetryPolicy,
    SelfDescribing,
    SelfDescribingJson,
    SqliteBuffer,
    StructuredEvent,
    Subject,
    Tracker,
    Verdict,
    classify_status,
)
from plowline.trackers.python.payload import (
    CONTEXTS_SCHEMA,
    PAYLOAD_DATA_SCHEMA,
    UNSTRUCT_EVENT_SCHEMA,
    base64url,
    batch_bytes,
    contexts_parameter,
    encode_event,
    get_parameters,
    post_body,
    unstruct_parameter,
)
from tests.e2e.support import REPO_ROOT

NO_WAIT = RetryPolicy(base_delay=0.001, max_delay=0.01)
CTX = SelfDescribingJson("iglu:com.acme/ctx/jsonschema/1-0-0", {"k": "v?>>~ ü"})


class RecordingCollector:
    """An httpx transport double: records the events of every request it accepts; `answer` picks the status."""

    def __init__(self, answer: Callable[[int], int | Exception] = lambda n: 200) -> None:
        self.answer = answer
        self.requests = 0
        self.accepted: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
            outcome = self.answer(self.requests)
            if isinstance(outcome, Exception):
                raise outcome
            if outcome == 200:
                if request.method == "POST":
                    body = request.read()
                    self.bodies.append(body)
                    envelope = json.loads(body)
                    assert envelope["schema"] == PAYLOAD_DATA_SCHEMA
                    assert request.url.path == "/com.snowplowanalytics.snowplow/tp2"
                    assert request.headers["content-type"] == "application/json; charset=utf-8"
                    self.accepted.extend(envelope["data"])
                else:
                    assert request.url.path == "/i"
                    self.accepted.append(dict(parse_qsl(urlsplit(str(request.url)).query, strict_parsing=True)))
        return httpx.Response(outcome, headers={"Retry-After": "0"} if outcome == 429 else {})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def eids(self) -> Counter[str]:
        return Counter(event["eid"] for event in self.accepted)


# --- Payload encoding -----------------------------------------------------------------------------------------

def test_base64url_alphabet_and_padding() -> None:
    text = '{"a":"??>>~~ü"}'
    standard = base64.b64encode(text.encode()).decode()
    assert "+" in standard or "/" in standard  # the input really exercises the two alphabet differences
    encoded = base64url(text)
    assert not set(encoded) & {"+", "/", "="}
    assert encoded == base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    # Enrich decodes it (padding optional), and so does a strict decoder once the padding is restored.
    assert decode_base64_json(encoded) == text
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() == text


@pytest.mark.parametrize("encode_base64", [True, False], ids=["base64", "plain"])
def test_contexts_and_unstruct_wrapping(encode_base64: bool) -> None:
    contexts = contexts_parameter([CTX, CTX], encode_base64)
    event = SelfDescribingJson("iglu:com.acme/evt/jsonschema/1-0-0", {"n": 1})
    unstruct = unstruct_parameter(event, encode_base64)
    if encode_base64:
        assert set(contexts) == {"cx"} and set(unstruct) == {"ue_px"}
        wrapper, unstruct_wrapper = json.loads(decode_base64_json(contexts["cx"])), json.loads(decode_base64_json(unstruct["ue_px"]))
    else:
        assert set(contexts) == {"co"} and set(unstruct) == {"ue_pr"}
        wrapper, unstruct_wrapper = json.loads(contexts["co"]), json.loads(unstruct["ue_pr"])
    assert wrapper == {"schema": CONTEXTS_SCHEMA, "data": [CTX.to_dict(), CTX.to_dict()]}
    assert CONTEXTS_SCHEMA.endswith("/contexts/jsonschema/1-0-1")
    assert unstruct_wrapper == {"schema": UNSTRUCT_EVENT_SCHEMA, "data": event.to_dict()}
    assert UNSTRUCT_EVENT_SCHEMA.endswith("/unstruct_event/jsonschema/1-0-0")
    assert contexts_parameter([], encode_base64) == {}


def test_tracker_payload_fields() -> None:
    captured: list[bytes] = []

    class Sink:
        def input(self, data: bytes) -> None:
            captured.append(data)

    subject = Subject(user_id="u", screen_resolution=(10, 20), viewport=(5, 6), color_depth=24, timezone="UTC",
                      language="en", ip_address="192.0.2.1", useragent="ua", domain_userid="d", network_userid="n",
                      domain_session_id="s", domain_session_index=2)
    tracker = Tracker(Sink(), namespace="ns", app_id="app", subject=subject, context=[CTX])
    eid = tracker.track(PageView(page_url="https://x.example/", page_title="T", true_timestamp=1.5,
                                 subject=Subject(user_id="override")))
    event = json.loads(captured[0])
    assert event["eid"] == eid and event["e"] == "pv"
    assert {key: event[key] for key in ("tna", "aid", "p", "uid", "res", "vp", "cd", "tz", "lang", "ip", "ua", "duid",
                                        "tnuid", "sid", "vid", "url", "page", "ttm")} == {
        "tna": "ns", "aid": "app", "p": "pc", "uid": "override", "res": "10x20", "vp": "5x6", "cd": "24", "tz": "UTC",
        "lang": "en", "ip": "192.0.2.1", "ua": "ua", "duid": "d", "tnuid": "n", "sid": "s", "vid": "2",
        "url": "https://x.example/", "page": "T", "ttm": "1500"}
    assert event["tv"].startswith("plowline-py-") and event["dtm"].isdigit() and "stm" not in event
    assert json.loads(decode_base64_json(event["cx"]))["data"] == [CTX.to_dict()]
    assert all(isinstance(value, str) for value in event.values())
    with pytest.raises(ValueError, match="platform"):
        Subject(platform="desktop")
    with pytest.raises(ValueError, match="Iglu"):
        SelfDescribingJson("com.acme/x", {})


@given(st.lists(st.dictionaries(st.sampled_from(["e", "eid", "url", "page", "co"]), st.text(), min_size=1),
                min_size=1, max_size=20))
def test_post_body_size_is_predicted_exactly(events: list[dict[str, str]]) -> None:
    encoded = [encode_event(event) for event in events]
    body = post_body(encoded, "1760000000000")
    assert batch_bytes(len(data) for data in encoded) == len(body)
    envelope = json.loads(body)
    assert envelope["schema"] == PAYLOAD_DATA_SCHEMA
    assert envelope["data"] == [{**event, "stm": "1760000000000"} for event in events]


def test_get_parameters_put_stm_first() -> None:
    assert list(get_parameters(encode_event({"e": "pv", "eid": "x"}), "123")) == ["stm", "e", "eid"]


# --- Retry verdicts and backoff -------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "verdict"), [
    (200, Verdict.DELIVERED), (204, Verdict.DELIVERED),
    (400, Verdict.REJECTED), (401, Verdict.REJECTED), (403, Verdict.REJECTED), (404, Verdict.REJECTED),
    (413, Verdict.REJECTED), (422, Verdict.REJECTED),
    (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY), (502, Verdict.RETRY), (503, Verdict.RETRY),
    (504, Verdict.RETRY), (301, Verdict.RETRY),
])
def test_classify_status(status: int, verdict: Verdict) -> None:
    assert classify_status(status) is verdict


def test_backoff_grows_with_jitter_and_caps() -> None:
    low = RetryPolicy(base_delay=1, max_delay=8, rng=lambda a, b: a)
    high = RetryPolicy(base_delay=1, max_delay=8, rng=lambda a, b: b)
    assert [low.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    jittered = RetryPolicy(base_delay=1, max_delay=8, rng=random.Random(7).uniform)
    assert len({jittered.delay(3) for _ in range(20)}) > 1  # not in lock-step
    assert all(2 <= jittered.delay(3) <= 4 for _ in range(100))
    assert low.delay(1, retry_after=3) == 3 and low.delay(1, retry_after=100) == 8


@pytest.mark.parametrize("failure", [503, 429, 500, 408, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
                         ids=["503", "429", "500", "408", "connect-error", "read-timeout"])
def test_retries_transient_failures_until_delivered(failure: int | Exception) -> None:
    collector = RecordingCollector(lambda n: failure if n <= 3 else 200)
    emitter = Emitter("http://collector.test", batch_size=5, retry=NO_WAIT, client=collector.client())
    tracker = Tracker(emitter)
    eids = [tracker.track(PageView(page_url=f"https://x.example/{i}")) for i in range(5)]
    assert emitter.flush(timeout=30)
    assert collector.requests == 4 and emitter.failed_requests == 3
    assert collector.eids() == Counter(eids)
    assert (emitter.acknowledged, emitter.rejected, emitter.pending) == (5, 0, 0)


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_client_errors_are_not_retried(status: int, caplog: pytest.LogCaptureFixture) -> None:
    collector = RecordingCollector(lambda n: status if n == 1 else 200)
    refused: list[tuple[list[str], int]] = []
    emitter = Emitter("http://collector.test", batch_size=2, retry=NO_WAIT, client=collector.client(),
                      on_failure=lambda eids, code: refused.append((eids, code)))
    tracker = Tracker(emitter)
    first = [tracker.track(PageView(page_url="https://x.example/")) for _ in range(2)]
    later = [tracker.track(PageView(page_url="https://x.example/")) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="plowline.trackers.python.emitters"):
        assert emitter.flush(timeout=30)
    assert collector.requests == 2, "the refused batch must not be sent again"
    assert refused == [(first, status)]
    assert collector.eids() == Counter(later)
    assert (emitter.acknowledged, emitter.rejected, emitter.failed_requests) == (2, 2, 0)


def test_flush_gives_up_at_its_timeout_and_keeps_the_events() -> None:
    collector = RecordingCollector(lambda n: 503)
    emitter = Emitter("http://collector.test", batch_size=100, retry=RetryPolicy(base_delay=0.2, max_delay=0.2),
                      client=collector.client())
    Tracker(emitter).track(PageView(page_url="https://x.example/"))
    assert emitter.flush(timeout=0.5) is False
    assert emitter.pending == 1 and emitter.acknowledged == 0 and collector.requests >= 1


def test_batches_respect_count_and_bytes() -> None:
    collector = RecordingCollector()
    emitter = Emitter("http://collector.test", batch_size=50, max_batch_bytes=2_000, retry=NO_WAIT,
                      client=collector.client())
    tracker = Tracker(emitter)
    eids = [tracker.track(PageView(page_url="https://x.example/" + "p" * 300, page_title=str(i))) for i in range(40)]
    assert emitter.flush(timeout=30)
    assert collector.eids() == Counter(eids)
    assert len(collector.bodies) > 1
    assert all(len(body) <= 2_000 for body in collector.bodies), [len(body) for body in collector.bodies]
    # A batch is sent as soon as the waiting events fill max_batch_bytes, without waiting for flush().
    collector2 = RecordingCollector()
    emitter2 = Emitter("http://collector.test", batch_size=1000, max_batch_bytes=2_000, client=collector2.client())
    tracker2 = Tracker(emitter2)
    for _ in range(10):
        tracker2.track(PageView(page_url="https://x.example/" + "p" * 300))
    assert collector2.requests >= 1
    emitter.close()
    emitter2.close()


def test_get_method_sends_one_event_per_request() -> None:
    collector = RecordingCollector()
    emitter = Emitter("http://collector.test", method="get", client=collector.client())
    tracker = Tracker(emitter, encode_base64=False, app_id="a b&c")
    eids = [tracker.track(StructuredEvent(category="c", action="a", label="l & m", value=1.25, context=[CTX]))
            for _ in range(3)]
    assert emitter.close(timeout=30)
    assert collector.requests == 3 and collector.eids() == Counter(eids)
    for event in collector.accepted:
        assert (event["aid"], event["se_la"], event["se_va"]) == ("a b&c", "l & m", "1.25")
        assert json.loads(event["co"])["data"] == [CTX.to_dict()] and event["stm"].isdigit()


async def test_async_emitter_retries_and_flushes() -> None:
    collector = RecordingCollector(lambda n: 503 if n == 1 else 200)
    client = httpx.AsyncClient(transport=httpx.MockTransport(collector.handle))
    emitter = AsyncEmitter("http://collector.test", batch_size=3, retry=NO_WAIT, client=client)
    tracker = Tracker(emitter)
    eids = [tracker.track(SelfDescribing(event=SelfDescribingJson("iglu:com.acme/e/jsonschema/1-0-0", {"i": i})))
            for i in range(7)]
    assert await emitter.aclose(timeout=30)
    await client.aclose()
    assert collector.eids() == Counter(eids) and emitter.failed_requests == 1 and emitter.acknowledged == 7


# --- Buffers: bound policy, persistence ---------------------------------------------------------------------

@pytest.fixture(params=["memory", "sqlite"])
def make_buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], MemoryBuffer | SqliteBuffer]:
    made: list[MemoryBuffer | SqliteBuffer] = []

    def make(capacity: int) -> MemoryBuffer | SqliteBuffer:
        buffer = MemoryBuffer(capacity) if request.param == "memory" else SqliteBuffer(tmp_path / "b.db", capacity)
        made.append(buffer)
        return buffer

    yield make  # type: ignore[misc]
    for buffer in made:
        buffer.close()


def test_full_buffer_drops_oldest_counts_and_warns(make_buffer: Callable[[int], MemoryBuffer | SqliteBuffer],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    buffer = make_buffer(3)
    with caplog.at_level(logging.WARNING, logger="plowline.trackers.python.buffer"):
        for i in range(10):
            buffer.put(f'{{"i":"{i}"}}'.encode())
    assert len(buffer) == 3 and buffer.dropped == 7
    assert [event.data for event in buffer.peek(10)] == [b'{"i":"7"}', b'{"i":"8"}', b'{"i":"9"}']
    # Warned on the 1st, 2nd and 4th drop (powers of two), not on every one.
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.args[1] for record in warnings] == [1, 2, 4]  # type: ignore[index]
    first, *_ = buffer.peek(1)
    buffer.remove([first.id, 123456])
    assert len(buffer) == 2 and buffer.peek(1)[0].data == b'{"i":"8"}'


def test_sqlite_buffer_persists_and_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "q" / "events.db"
    buffer = SqliteBuffer(path, capacity=100)
    for i in range(5):
        buffer.put(f'{{"i":"{i}"}}'.encode())
    buffer.remove([buffer.peek(1)[0].id])
    with pytest.raises(BufferLocked):
        SqliteBuffer(path)
    buffer.close()
    reopened = SqliteBuffer(path, capacity=100)
    try:
        assert len(reopened) == 4
        assert [event.data for event in reopened.peek(10)] == [f'{{"i":"{i}"}}'.encode() for i in range(1, 5)]
    finally:
        reopened.close()


def test_emitter_drops_oldest_when_buffer_full_during_outage() -> None:
    down = True
    collector = RecordingCollector(lambda n: httpx.ConnectError("down") if down else 200)
    emitter = Emitter("http://collector.test", batch_size=2, retry=NO_WAIT, buffer=MemoryBuffer(5),
                      client=collector.client())
    tracker = Tracker(emitter)
    eids = [tracker.track(PageView(page_url=f"https://x.example/{i}")) for i in range(12)]
    down = False
    assert emitter.flush(timeout=30)
    assert emitter.dropped == 7
    assert collector.eids() == Counter(eids[-5:])  # the newest five, each once


# --- Thread safety ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sending", ["inline", "thread"])
def test_concurrent_tracking_delivers_each_event_once(sending: str, tmp_path: Path) -> None:
    # Every 7th request fails (503): retries interleave with the other threads' tracking.
    collector = RecordingCollector(lambda n: 503 if n % 7 == 0 else 200)
    emitter = Emitter("http://collector.test", batch_size=8, retry=NO_WAIT, client=collector.client(),
                      buffer=SqliteBuffer(tmp_path / "t.db") if sending == "thread" else MemoryBuffer(100_000),
                      flush_interval=0.01 if sending == "thread" else None)
    tracker = Tracker(emitter, namespace="threads")
    eids: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work(worker: int) -> None:
        start.wait()
        mine: list[str] = []
        for i in range(200):
            mine.append(tracker.track(StructuredEvent(category=f"w{worker}", action=f"a{i}", value=i)))
            if i % 40 == 39:  # flushes from several threads race the inline sends and the sending thread
                assert emitter.flush(timeout=60)
        with lock:
            eids.extend(mine)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert emitter.close(timeout=60)
    assert len(set(eids)) == len(eids) == 1200
    assert collector.eids() == Counter(eids), "every event delivered exactly once"
    assert emitter.acknowledged == 1200 and emitter.failed_requests >= 1


# --- Import has no side effects -----------------------------------------------------------------------------

def test_import_has_no_side_effects() -> None:
    script = (
        "import logging, threading\n"
        "import plowline.trackers.python, plowline.trackers.pixel\n"
        "from plowline.trackers.python import Emitter, Tracker\n"
        "root = logging.getLogger()\n"
        "assert root.handlers == [], root.handlers\n"
        "assert root.level == logging.WARNING, root.level\n"
        "assert all(not logging.getLogger(name).handlers for name in logging.root.manager.loggerDict), 'handler added'\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "e = Emitter('http://127.0.0.1:9', flush_interval=1.0)\n"
        "assert threading.active_count() == 1, 'no thread before the first event'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
