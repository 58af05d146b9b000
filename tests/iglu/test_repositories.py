"""Each repository type: found, not found, listing, and failures, against real files and a real HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from plowline.errors import ConfigError
from plowline.iglu.errors import InvalidSchemaDocument, RepositoryUnavailable
from plowline.iglu.repositories import (
    EmbeddedRepository,
    IgluServerRepository,
    LocalRepository,
    StaticHttpRepository,
)
from plowline.schema_key import SchemaKey
from tests.iglu.conftest import IGLU_CENTRAL, WEB_PAGE, StaticServer, write_schema

CONTEXTS = SchemaKey.parse("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1")
WEB = SchemaKey.parse(WEB_PAGE)
MISSING = SchemaKey.parse("iglu:com.acme/missing/jsonschema/1-0-0")


def test_embedded_serves_the_package_schemas() -> None:
    repo = EmbeddedRepository()
    schema = repo.lookup(CONTEXTS)
    assert schema is not None and schema["self"]["name"] == "contexts"
    assert repo.lookup(WEB) is None  # a tracker schema, not one the pipeline needs
    assert [str(k.version) for k in repo.list_versions("com.snowplowanalytics.snowplow", "payload_data", 1) or []] == [
        "1-0-0", "1-0-1", "1-0-2", "1-0-3", "1-0-4"]


@pytest.mark.parametrize("path", [None, "/iglu-embedded", "/iglu-client-embedded"])
def test_embedded_special_paths_mean_the_package(path: str | None) -> None:
    repo = EmbeddedRepository(path)
    assert repo.exists and repo.path is None
    assert repo.lookup(CONTEXTS) is not None


def test_embedded_path_on_disk_is_a_static_directory(acme_repo: Path) -> None:
    repo = EmbeddedRepository(str(acme_repo), name="Acme")
    assert repo.exists
    assert repo.lookup(SchemaKey.parse("iglu:com.acme/ping/jsonschema/1-0-0")) is not None
    assert repo.lookup(CONTEXTS) is None


def test_embedded_relative_path_is_taken_from_base_dir(acme_repo: Path) -> None:
    repo = EmbeddedRepository(acme_repo.name, base_dir=acme_repo.parent)
    assert repo.exists and repo.path == acme_repo


def test_embedded_missing_directory_finds_nothing(tmp_path: Path) -> None:
    repo = EmbeddedRepository(str(tmp_path / "nowhere"))
    assert not repo.exists
    assert repo.lookup(CONTEXTS) is None
    assert repo.list_versions("com.acme", "event", 1) == []


def test_local_repository_reads_iglu_central() -> None:
    repo = LocalRepository(IGLU_CENTRAL)
    schema = repo.lookup(WEB)
    assert schema is not None and schema["self"]["name"] == "web_page"
    assert repo.lookup(MISSING) is None
    assert repo.name == str(IGLU_CENTRAL)


def test_local_repository_lists_one_model(acme_repo: Path) -> None:
    repo = LocalRepository(acme_repo)
    assert [k.uri for k in repo.list_versions("com.acme", "event", 1) or []] == [
        "iglu:com.acme/event/jsonschema/1-0-0", "iglu:com.acme/event/jsonschema/1-0-1"]
    assert repo.list_versions("com.acme", "event", 2) == []
    assert repo.list_versions("com.acme", "nothing", 1) == []


def test_local_repository_without_schemas_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schemas/ folder") as info:
        LocalRepository(tmp_path)
    assert info.value.key == "iglu"


def test_local_repository_rejects_invalid_json(tmp_path: Path) -> None:
    file = write_schema(tmp_path, "iglu:com.acme/broken/jsonschema/1-0-0", {})
    file.write_text("{not json")
    with pytest.raises(InvalidSchemaDocument, match="not valid JSON"):
        LocalRepository(tmp_path).lookup(SchemaKey.parse("iglu:com.acme/broken/jsonschema/1-0-0"))
    file.write_text("[1, 2]")
    with pytest.raises(InvalidSchemaDocument, match="not a JSON object"):
        LocalRepository(tmp_path).lookup(SchemaKey.parse("iglu:com.acme/broken/jsonschema/1-0-0"))


def test_a_dot_dot_vendor_cannot_leave_the_tree(tmp_path: Path) -> None:
    write_schema(tmp_path / "repo", "iglu:com.acme/x/jsonschema/1-0-0", {})
    (tmp_path / "repo" / "x" / "jsonschema").mkdir(parents=True)
    (tmp_path / "repo" / "x" / "jsonschema" / "1-0-0").write_text("{}")
    assert LocalRepository(tmp_path / "repo").lookup(SchemaKey.parse("iglu:../x/jsonschema/1-0-0")) is None


def test_static_http_found_and_not_found(central_server: StaticServer) -> None:
    repo = StaticHttpRepository(central_server.url + "/", name="central")
    try:
        schema = repo.lookup(WEB)
        assert schema is not None and schema["self"]["name"] == "web_page"
        assert repo.lookup(MISSING) is None
        assert central_server.paths() == [f"/schemas/{WEB.path}", f"/schemas/{MISSING.path}"]
        assert "apikey" not in central_server.requests[0][1]
        assert repo.list_versions("com.snowplowanalytics.snowplow", "web_page", 1) is None
        assert len(central_server.requests) == 2  # listing a static repository makes no request
    finally:
        repo.close()


def test_static_http_sends_the_apikey(central_server: StaticServer) -> None:
    repo = StaticHttpRepository(central_server.url, apikey="secret-key")
    try:
        repo.lookup(WEB)
    finally:
        repo.close()
    assert central_server.requests[0][1]["apikey"] == "secret-key"


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_server_trouble_is_unavailable(central_server: StaticServer, status: int) -> None:
    central_server.status = status
    repo = StaticHttpRepository(central_server.url, name="central")
    try:
        with pytest.raises(RepositoryUnavailable, match=f"HTTP {status}"):
            repo.lookup(WEB)
    finally:
        repo.close()


@pytest.mark.parametrize("status", [400, 401, 403, 410])
def test_other_client_errors_are_not_found(central_server: StaticServer, status: int) -> None:
    central_server.status = status
    repo = StaticHttpRepository(central_server.url)
    try:
        assert repo.lookup(WEB) is None
    finally:
        repo.close()


def test_a_down_server_is_unavailable(dead_url: str) -> None:
    repo = StaticHttpRepository(dead_url, name="down")
    try:
        with pytest.raises(RepositoryUnavailable, match=r"down: GET .* failed: ConnectError"):
            repo.lookup(WEB)
    finally:
        repo.close()


def test_http_body_that_is_not_json(central_server: StaticServer, tmp_path: Path) -> None:
    central_server.root = tmp_path
    (tmp_path / "schemas" / WEB.path).parent.mkdir(parents=True)
    (tmp_path / "schemas" / WEB.path).write_text("<html>")
    repo = StaticHttpRepository(central_server.url)
    try:
        with pytest.raises(InvalidSchemaDocument):
            repo.lookup(WEB)
    finally:
        repo.close()


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/"])
def test_iglu_server_is_queried_under_api(acme_server: StaticServer, suffix: str) -> None:
    repo = IgluServerRepository(acme_server.url + suffix, "key-1", name="acme")
    try:
        schema = repo.lookup(SchemaKey.parse("iglu:com.acme/ping/jsonschema/1-0-0"))
    finally:
        repo.close()
    assert schema is not None
    assert acme_server.requests == [("/api/schemas/com.acme/ping/jsonschema/1-0-0", acme_server.requests[0][1])]
    assert acme_server.requests[0][1]["apikey"] == "key-1"


def test_iglu_server_lists_versions(acme_server: StaticServer) -> None:
    repo = IgluServerRepository(acme_server.url + "/api")
    try:
        listed = repo.list_versions("com.acme", "event", 1)
        assert [k.uri for k in listed or []] == ["iglu:com.acme/event/jsonschema/1-0-0",
                                                 "iglu:com.acme/event/jsonschema/1-0-1"]
        assert repo.list_versions("com.acme", "event", 2) == []
    finally:
        repo.close()
    assert acme_server.paths()[0] == "/api/schemas/com.acme/event/jsonschema/1"


@pytest.mark.parametrize("uri", ["ftp://iglu.acme.com", "not a url", "http://"])
def test_http_repository_needs_an_http_url(uri: str) -> None:
    with pytest.raises(ConfigError):
        StaticHttpRepository(uri)
