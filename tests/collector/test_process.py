"""The collector as users run it: a real server process, worker processes, kill -9, hostile clients."""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.slow


def ids_in_log(process: CollectorProcess) -> list[str]:
    return [parse_qs(record.querystring or "")["id"][0] for record in process.records()]


def test_two_workers_share_the_log_and_the_metrics(tmp_path: Path) -> None:
    process = CollectorProcess(tmp_path / "data", workers=2).start()
    try:
        # /health answers once the first worker is up; each worker locks its own partition as it
        # starts, so two partitions appear once both are serving (slow to boot on a busy CI host).
        deadline = time.monotonic() + 30
        while len(partitions := process.partitions()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partitions == ["p-00000", "p-00001"], partitions
        with httpx.Client(base_url=process.base_url) as client:
            for number in range(100):
                response = client.get(f"/i?e=pv&id={number}", headers={"Connection": "close"})
                assert response.status_code == 200
            metrics = client.get("/metrics").text
        assert sorted(ids_in_log(process), key=int) == [str(n) for n in range(100)]
        assert process.partitions() == ["p-00000", "p-00001"]  # no worker opened a second one
        line = next(x for x in metrics.splitlines() if x.startswith('plowline_collector_requests_total{route="pixel",status="200"}'))
        assert float(line.split()[-1]) == 100.0
    finally:
        process.stop()


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Every request answered 2xx before the crash is in the log after restart, and the log still works."""
    data_dir = tmp_path / "data"
    process = CollectorProcess(data_dir, workers=2).start()
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10_000_000))

    def client_loop() -> None:
        with httpx.Client(base_url=process.base_url, timeout=5) as client:
            while not stop.is_set():
                with lock:
                    number = str(next(counter))
                try:
                    if number.endswith("7"):
                        body = '{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv"}]}'
                        response = client.post(f"/com.snowplowanalytics.snowplow/tp2?id={number}", content=body,
                                               headers={"Content-Type": "application/json"})
                    else:
                        response = client.get(f"/i?e=pv&id={number}")
                except httpx.HTTPError:
                    time.sleep(0.01)
                    continue
                if 200 <= response.status_code < 300:
                    with lock:
                        acknowledged.add(number)

    with ThreadPoolExecutor(16) as pool:
        for _ in range(16):
            pool.submit(client_loop)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(acknowledged) >= 1500:
                    break
            time.sleep(0.01)
        process.stop(signal.SIGKILL)  # mid-load: requests are in flight
        time.sleep(0.3)
        stop.set()
    assert len(acknowledged) >= 1500

    restarted = CollectorProcess(data_dir, workers=2).start()
    try:
        stored = ids_in_log(restarted)
        assert acknowledged <= set(stored), f"lost {len(acknowledged - set(stored))} acknowledged requests"
        with httpx.Client(base_url=restarted.base_url) as client:
            for number in range(20):
                assert client.get(f"/i?e=pv&id=after-{number}").status_code == 200
        after = [i for i in ids_in_log(restarted) if i.startswith("after-")]
        assert sorted(after) == sorted(f"after-{n}" for n in range(20))
    finally:
        restarted.stop()


def raw_exchange(port: int, data: bytes, read_timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and not data.startswith(b"POST"):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


HOSTILE = [
    b"GARBAGE\r\n\r\n",
    b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
    b"GET /i?e=pv HTTP/9.9\r\nHost: x\r\n\r\n",
    b"BREW /i HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /i?e=pv\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%zz/%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\xfe\xfd\r\n\r\n",
    b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nBad Header Name: v\r\n\r\n",
    b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"trunc",
    b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"h" * 60_000 + b"\r\n\r\n",
    b"GET /i?" + b"q" * 30_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n" + b"a" * 100_000,
]


def test_hostile_clients_get_4xx_never_500_and_the_server_survives(tmp_path: Path) -> None:
    process = CollectorProcess(tmp_path / "data").start()
    try:
        for request in HOSTILE:
            answer = raw_exchange(process.port, request)
            if answer:
                status_line = answer.split(b"\r\n", 1)[0]
                assert not status_line.startswith(b"HTTP/1.1 5"), (request[:60], status_line)
            assert process.process is not None and process.process.poll() is None
        with httpx.Client(base_url=process.base_url) as client:
            assert client.get("/health").text == "ok"
            assert client.get("/i?e=pv&id=still-here").status_code == 200
            big = client.post("/com.snowplowanalytics.snowplow/tp2", content=b"a" * 2_100_000,
                              headers={"Content-Type": "application/json"})
            assert big.status_code == 413
            line = client.get("/i?e=pv&x=" + "a" * 21_000)
            assert line.status_code in (400, 414)
        assert "still-here" in (process.records()[-1].querystring or "")
        assert "Traceback" not in process.log_text()
    finally:
        process.stop()
