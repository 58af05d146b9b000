"""Fixtures for Plowline's own trackers: the real enrich pipeline, offline (as the e2e tracker tests use it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plowline.enrich.pipeline import Pipeline
from plowline.enrich.service import build_pipeline
from tests.e2e.support import offline_enrich_settings


@pytest.fixture
def enrich_pipeline(tmp_path: Path) -> Pipeline:
    """The real enrich pipeline with the default enrichments; schemas from Iglu Central's snapshot and the
    com.acme test repository only (nothing goes to the network)."""
    return build_pipeline(offline_enrich_settings(tmp_path / "enrich"))
