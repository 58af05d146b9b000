"""Shared fixtures: a real collector process on a free port with a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.collector_process import CollectorProcess

# Hypothesis' per-example deadline fails tests on a busy 2-core machine; time is not the property.
settings.register_profile("plowline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("plowline")

# Browsers and non-TLS test pages: the Secure attribute would stop the cookie from being stored.
INSECURE_COOKIE = {"PLOWLINE_COLLECTOR__COOKIE__SECURE": "false", "PLOWLINE_COLLECTOR__COOKIE__SAME_SITE": "Lax"}


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    """A running `plowline collector` (1 worker) on loopback, stopped after the test."""
    process = CollectorProcess(tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()
