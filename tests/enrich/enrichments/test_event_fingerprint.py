"""event_fingerprint_config: Snowplow's vectors, the algorithm by hand, every hash, config errors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.enrich.enrichments.event_fingerprint import ALGORITHMS, EventFingerprint, fingerprint
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import TEST_DATA, NoAssets, raw_event, valid_parameters, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow/event_fingerprint_config/jsonschema/1-0-1"
VECTORS = json.loads((TEST_DATA / "event_fingerprint" / "vectors.json").read_text(encoding="utf-8"))["vectors"]


def enrichment(algorithm: str = "MD5", exclude: list[str] | None = None) -> EventFingerprint:
    parameters = {"hashAlgorithm": algorithm, "excludeParameters": exclude or []}
    return EventFingerprint.from_config(valid_parameters(SCHEMA, parameters), NoAssets())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_snowplow_vectors(vector: dict[str, Any]) -> None:
    event = web_event()
    assert enrichment(vector["hashAlgorithm"], vector["excludeParameters"]).enrich(
        event, raw_event(vector["parameters"])) == ()
    assert event.event_fingerprint == vector["expected"]


def test_by_hand() -> None:
    # Sorted by key, excluded keys and null values dropped, each key and value followed by U+001F.
    parameters = {"tv": "js-3", "e": "pv", "eid": "e-1", "aid": "shop", "flag": None, "url": "http://x/é"}
    text = "aid\x1fshop\x1fe\x1fpv\x1ftv\x1fjs-3\x1furl\x1fhttp://x/é\x1f"
    assert fingerprint(parameters, frozenset({"eid"})) == hashlib.md5(text.encode()).hexdigest()


@pytest.mark.parametrize(("name", "length"), [("MD5", 32), ("SHA1", 40), ("SHA256", 64), ("SHA384", 96),
                                              ("SHA512", 128)])
def test_algorithms(name: str, length: int) -> None:
    event = web_event()
    enrichment(name).enrich(event, raw_event({"e": "pv"}))
    expected = hashlib.new(name.replace("SHA", "sha").replace("MD5", "md5"), b"e\x1fpv\x1f").hexdigest()
    assert event.event_fingerprint == expected
    assert len(expected) == length


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=8), st.text(max_size=8))
def test_excluded_parameters_do_not_matter(parameters: dict[str, str], excluded_value: str) -> None:
    with_excluded = {**parameters, "eid": excluded_value}
    without = {k: v for k, v in parameters.items() if k != "eid"}
    assert fingerprint(with_excluded, frozenset({"eid"})) == fingerprint(without, frozenset({"eid"}))


def test_parameter_order_does_not_matter() -> None:
    assert fingerprint({"a": "1", "b": "2"}, frozenset()) == fingerprint({"b": "2", "a": "1"}, frozenset())


def test_lone_surrogates_do_not_fail() -> None:
    assert len(fingerprint({"a": "\ud800"}, frozenset())) == 32


@pytest.mark.parametrize(("parameters", "key"), [
    ({"excludeParameters": []}, "parameters.hashAlgorithm"),
    ({"hashAlgorithm": "CRC32", "excludeParameters": []}, "parameters.hashAlgorithm"),
    ({"hashAlgorithm": "MD5"}, "parameters.excludeParameters"),
    ({"hashAlgorithm": "MD5", "excludeParameters": "eid"}, "parameters.excludeParameters"),
], ids=["no algorithm", "unknown algorithm", "no exclusions", "exclusions not a list"])
def test_bad_config_names_the_parameter(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        EventFingerprint.from_config(parameters, NoAssets())
    assert raised.value.key == key
    assert set(ALGORITHMS) == {"MD5", "SHA1", "SHA256", "SHA384", "SHA512"}
