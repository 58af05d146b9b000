"""Fixtures for the real-tracker tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plowline.enrich.pipeline import Pipeline
from plowline.enrich.service import build_pipeline
from tests.conftest import INSECURE_COOKIE
from tests.e2e.support import offline_enrich_settings, serve_test_page
from tests.support.collector_process import CollectorProcess


@pytest.fixture
def cookie_collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    """A running collector whose `sp` cookie a client keeps over plain http (Secure=false, SameSite=Lax)."""
    process = CollectorProcess(tmp_path / "data", env=INSECURE_COOKIE).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def page_site(tmp_path: Path) -> Iterator[str]:
    """The browser tracker's test page and UMD bundle, on a free loopback port (another origin than the collector)."""
    with serve_test_page(tmp_path / "site") as url:
        yield url


@pytest.fixture
def enrich_pipeline(tmp_path: Path) -> Pipeline:
    """The real enrich pipeline with the default enrichments; schemas from Iglu Central's snapshot and the
    com.acme test repository only (a resolver config with no HTTP repository: nothing goes to the network)."""
    return build_pipeline(offline_enrich_settings(tmp_path / "enrich"))
