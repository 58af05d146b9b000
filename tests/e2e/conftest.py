"""Fixtures for the real-tracker tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import INSECURE_COOKIE
from tests.support.collector_process import CollectorProcess


@pytest.fixture
def cookie_collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    """A running collector whose `sp` cookie a client keeps over plain http (Secure=false, SameSite=Lax)."""
    process = CollectorProcess(tmp_path / "data", env=INSECURE_COOKIE).start()
    try:
        yield process
    finally:
        process.stop()
