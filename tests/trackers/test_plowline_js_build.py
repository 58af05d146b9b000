"""The plowline.js the collector serves (plowline.min.js) is exactly the pinned esbuild's minified build of
the readable source: an edit to plowline.js that was not rebuilt with scripts/build-plowline-js.sh fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "plowline" / "trackers" / "js"


def test_the_served_build_is_the_minified_source(tmp_path: Path) -> None:
    rebuilt = tmp_path / "plowline.min.js"
    result = subprocess.run(["bash", str(REPO / "scripts" / "build-plowline-js.sh"), str(rebuilt)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    committed = (SCRIPTS / "plowline.min.js").read_bytes()
    assert rebuilt.read_bytes() == committed, (
        "plowline/trackers/js/plowline.min.js is stale: run scripts/build-plowline-js.sh and commit the result")


def test_the_build_keeps_the_public_api(tmp_path: Path) -> None:
    """Minifying renames locals only: the global, the commands and the protocol strings survive."""
    served = (SCRIPTS / "plowline.min.js").read_text()
    for kept in ("PlowlineGlobalName", "newTracker", "trackPageView", "enableActivityTracking",
                 "trackSelfDescribingEvent", "/com.snowplowanalytics.snowplow/tp2", "payload_data/jsonschema/1-0-4"):
        assert kept in served, kept
