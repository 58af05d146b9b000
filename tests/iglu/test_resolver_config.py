"""Resolver configs: real Snowplow examples load; bad ones fail with a ConfigError naming the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from plowline.errors import ConfigError
from plowline.iglu.repositories import EmbeddedRepository, IgluServerRepository, LocalRepository, StaticHttpRepository
from plowline.iglu.resolver import Resolver
from plowline.iglu.resolver_config import parse_resolver_config
from plowline.schema_key import SchemaKey
from tests.iglu.conftest import IGLU_CENTRAL, StaticServer

# spec/enrich.md 2.9
SPEC_EXAMPLE: dict[str, Any] = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
    "data": {"cacheSize": 500, "cacheTtl": 600, "repositories": [
        {"name": "Iglu Central", "priority": 0, "vendorPrefixes": ["com.snowplowanalytics"],
         "connection": {"http": {"uri": "http://iglucentral.com"}}},
        {"name": "Custom", "priority": 1, "vendorPrefixes": ["com.acme"],
         "connection": {"http": {"uri": "https://iglu.acme.com/api", "apikey": "<uuid>"}}},
        {"name": "Local", "priority": 2, "vendorPrefixes": [], "connection": {"embedded": {"path": "/iglu-repo"}}},
    ]},
}

# Snowplow's JavaScript tracker test setup (micro), resolver-config 1-0-0: no cacheTtl.
MICRO_1_0_0: dict[str, Any] = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-0",
    "data": {"cacheSize": 500, "repositories": [
        {"name": "Iglu Central", "priority": 0, "vendorPrefixes": ["com.snowplowanalytics"],
         "connection": {"http": {"uri": "http://iglucentral.com"}}}]},
}

# docs.snowplow.io Iglu Resolver page, 1-0-3 with an Iglu Server (apikey) and cacheTtl null allowed.
DOCS_1_0_2: dict[str, Any] = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-2",
    "data": {"cacheSize": 500, "cacheTtl": None, "repositories": [
        {"name": "Iglu Central", "priority": 0, "vendorPrefixes": ["com.snowplowanalytics"],
         "connection": {"http": {"uri": "https://iglucentral.com"}}},
        {"name": "Custom Iglu Server", "priority": 0, "vendorPrefixes": ["com.snowplowanalytics"],
         "connection": {"http": {"uri": "https://iglu.example.com/api", "apikey": "1b7f2c1e-8f0c-4f4b-9d2b-1f4f4b0e7c2a"}}},
    ]},
}


def test_spec_example_loads() -> None:
    settings = parse_resolver_config(SPEC_EXAMPLE)
    assert (settings.cache_size, settings.cache_ttl) == (500, 600.0)
    central, custom, local = settings.repositories
    assert isinstance(central, StaticHttpRepository) and central.base == "http://iglucentral.com"
    assert isinstance(custom, IgluServerRepository)
    assert (custom.base, custom.apikey, custom.priority, custom.vendor_prefixes) == (
        "https://iglu.acme.com/api", "<uuid>", 1, ("com.acme",))
    assert isinstance(local, EmbeddedRepository) and not local.exists  # no /iglu-repo here: finds nothing


def test_spec_example_order_per_vendor() -> None:
    with Resolver.from_config(SPEC_EXAMPLE) as resolver:
        assert [repo.name for repo in resolver.repositories_for("com.acme")] == [
            "Iglu Client Embedded", "Custom", "Local", "Iglu Central"]
        assert [repo.name for repo in resolver.repositories_for("com.snowplowanalytics.snowplow")] == [
            "Iglu Client Embedded", "Iglu Central", "Local", "Custom"]


@pytest.mark.parametrize("config", [MICRO_1_0_0, DOCS_1_0_2], ids=["1-0-0", "1-0-2"])
def test_older_versions_load(config: dict[str, Any]) -> None:
    settings = parse_resolver_config(config)
    assert settings.cache_ttl is None
    assert settings.repositories[0].name == "Iglu Central"


def test_config_from_file_text_and_dict_agree(tmp_path: Path) -> None:
    file = tmp_path / "resolver.json"
    file.write_text(json.dumps(SPEC_EXAMPLE))
    names = [[repo.name for repo in parse_resolver_config(source).repositories]
             for source in (file, str(file), json.dumps(SPEC_EXAMPLE), SPEC_EXAMPLE)]
    assert names[0] == names[1] == names[2] == names[3] == ["Iglu Central", "Custom", "Local"]


def test_relative_embedded_path_is_relative_to_the_config_file(tmp_path: Path, acme_repo: Path) -> None:
    config = {"schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3", "data": {
        "cacheSize": 10, "repositories": [
            {"name": "acme", "priority": 0, "vendorPrefixes": [], "connection": {"embedded": {"path": "acme"}}}]}}
    (tmp_path / "resolver.json").write_text(json.dumps(config))
    with Resolver.from_config(tmp_path / "resolver.json") as resolver:
        assert resolver.lookup(SchemaKey.parse("iglu:com.acme/ping/jsonschema/1-0-0"))["self"]["name"] == "ping"


def test_embedded_iglu_embedded_path_is_the_package() -> None:
    config = copy.deepcopy(MICRO_1_0_0)
    config["data"]["repositories"] = [{"name": "embedded", "priority": 0, "vendorPrefixes": [],
                                       "connection": {"embedded": {"path": "/iglu-embedded"}}}]
    (repository,) = parse_resolver_config(config).repositories
    assert isinstance(repository, EmbeddedRepository) and repository.path is None and repository.exists


def test_extra_local_dirs_come_first_after_embedded(central_server: StaticServer, acme_repo: Path) -> None:
    config = copy.deepcopy(SPEC_EXAMPLE)
    config["data"]["repositories"][0]["connection"]["http"]["uri"] = central_server.url
    with Resolver.from_config(config, extra_local_dirs=[acme_repo, IGLU_CENTRAL]) as resolver:
        order = resolver.repositories_for("com.snowplowanalytics.snowplow")
        assert [type(repo) for repo in order[:3]] == [EmbeddedRepository, LocalRepository, LocalRepository]
        resolver.lookup(SchemaKey.parse("iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"))
    assert central_server.requests == []


def broken(path: list[str | int], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    config = copy.deepcopy(SPEC_EXAMPLE)
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return config


@pytest.mark.parametrize(("config", "key"), [
    (broken(["data", "cacheSize"], delete=True), "data.cacheSize"),
    (broken(["data", "cacheSize"], "big"), "data.cacheSize"),
    (broken(["data", "cacheSize"], -1), "data.cacheSize"),
    (broken(["data", "cacheSize"], 1.5), "data.cacheSize"),
    (broken(["data", "cacheTtl"], -5), "data.cacheTtl"),
    (broken(["data", "repositories"], delete=True), "data.repositories"),
    (broken(["data", "unknown"], 1), "data.unknown"),
    (broken(["data", "repositories", 1, "priority"], "high"), "data.repositories[1].priority"),
    (broken(["data", "repositories", 1, "priority"], 0.5), "data.repositories[1].priority"),
    (broken(["data", "repositories", 2, "vendorPrefixes"], delete=True), "data.repositories[2].vendorPrefixes"),
    (broken(["data", "repositories", 2, "connection"], {"ftp": {"host": "x"}}), "data.repositories[2].connection"),
    (broken(["data", "repositories", 0, "connection", "http"], {"url": "http://x"}),
     "data.repositories[0].connection"),
    (broken(["data", "repositories", 1, "name"], "Iglu Central"), "data.repositories[1].name"),
    (broken(["data", "repositories", 1, "connection", "http", "uri"], "ftp://iglu.acme.com"),
     "data.repositories[1].connection.http.uri"),
    (broken(["schema"], "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-9"), "schema"),
    (broken(["schema"], "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/2-0-0"), "schema"),
    (broken(["schema"], "iglu:com.acme/config/jsonschema/1-0-0"), "schema"),
    (broken(["schema"], "resolver-config"), "schema"),
    ({"cacheSize": 500, "repositories": []}, "schema"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_bad_configs_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Resolver.from_config(config)
    assert info.value.key == key
    assert str(info.value).startswith(key + ": ")


def test_several_problems_are_reported_together() -> None:
    config = broken(["data", "repositories", 1, "priority"], "high")
    config["data"]["repositories"][2]["connection"] = {"ftp": {}}
    with pytest.raises(ConfigError) as info:
        Resolver.from_config(config)
    assert "data.repositories[1].priority" in str(info.value)
    assert "data.repositories[2].connection" in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        Resolver.from_config(tmp_path / "missing.json")
    assert info.value.key == "resolver"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Resolver.from_config(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        Resolver.from_config(tmp_path / "list.json")


def test_missing_extra_local_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schemas/ folder"):
        Resolver.from_config(SPEC_EXAMPLE, extra_local_dirs=[tmp_path / "nope"])
