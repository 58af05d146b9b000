"""`plowline up` with the duckdb warehouse, the dashboard and (optionally) Micro, for the dashboard and Micro tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.e2e.support import IGLU_CENTRAL, write_acme_iglu, write_offline_resolver
from tests.support.collector_process import free_port
from tests.support.plowline_cli import PlowlineProcess, collector_healthy

T = TypeVar("T")
WAIT_S = 60.0


def start_plowline_up(root: Path, *, micro: bool, extra_env: dict[str, str] | None = None) -> tuple[PlowlineProcess, str]:
    """`plowline up` on `root/data` with only the duckdb loader, offline Iglu (Iglu Central's snapshot and the
    com.acme test schemas), one enrich worker; returns the process and its base URL once /health answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    args = ["up", "--data-dir", str(root / "data"), "--port", str(port), "--enrich-workers", "1",
            "--resolver", str(write_offline_resolver(root / "resolver.json")),
            "--iglu", str(IGLU_CENTRAL), "--iglu", str(write_acme_iglu(root / "iglu-acme"))]
    env = {"PLOWLINE_STORAGE__LOADERS": '["duckdb"]', "PLOWLINE_MICRO__ENABLED": "true" if micro else "false",
           **(extra_env or {})}
    process = PlowlineProcess(args, root, root / "plowline-up.log", env=env)
    process.start(collector_healthy(base_url), timeout_s=WAIT_S)
    return process, base_url


def wait_for(read: Callable[[], T], done: Callable[[T], bool], what: str, timeout_s: float = WAIT_S) -> T:
    """Poll `read()` until `done(value)`; fail naming `what` and the last value if it never is."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s}s; last: {value!r}")
        time.sleep(0.2)
