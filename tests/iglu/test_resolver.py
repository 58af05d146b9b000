"""Resolver: repository order, caching with TTL, lookupHistory, unavailability and retries, superseding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plowline.iglu.errors import RepositoryUnavailable, ResolutionError, ValidationError
from plowline.iglu.repositories import (
    EMBEDDED_NAME,
    EmbeddedRepository,
    IgluServerRepository,
    LocalRepository,
    Repository,
    StaticHttpRepository,
)
from plowline.iglu.resolver import Resolver
from plowline.schema_key import SchemaKey, SchemaVer
from tests.iglu.conftest import IGLU_CENTRAL, WEB_PAGE, FakeClock, StaticServer, write_schema

WEB = SchemaKey.parse(WEB_PAGE)
CONTEXTS = SchemaKey.parse("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1")
PING = SchemaKey.parse("iglu:com.acme/ping/jsonschema/1-0-0")
MISSING = SchemaKey.parse("iglu:com.acme/missing/jsonschema/1-0-0")
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def over_http(central_server: StaticServer, clock: FakeClock) -> Iterator[Resolver]:
    """Embedded first, then the Iglu Central snapshot over HTTP; TTL 60 s on a hand-moved clock."""
    resolver = Resolver([StaticHttpRepository(central_server.url, name="Iglu Central")],
                        cache_ttl=60, clock=clock, retry_backoff=0)
    yield resolver
    resolver.close()


def test_embedded_schemas_never_touch_the_network(over_http: Resolver, central_server: StaticServer) -> None:
    assert over_http.lookup(CONTEXTS)["self"]["name"] == "contexts"
    over_http.validate_sdj({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1", "data": []})
    assert central_server.requests == []


def test_local_dir_answers_before_http(central_server: StaticServer) -> None:
    with Resolver([StaticHttpRepository(central_server.url, vendor_prefixes=["com.snowplowanalytics"])],
                  preferred=[EmbeddedRepository(), LocalRepository(IGLU_CENTRAL)]) as resolver:
        assert resolver.lookup(WEB)["self"]["name"] == "web_page"
    assert central_server.requests == []


def test_cache_hit_makes_no_request_and_ttl_expiry_makes_one(
    over_http: Resolver, central_server: StaticServer, clock: FakeClock
) -> None:
    first = over_http.lookup(WEB)
    assert over_http.lookup(WEB) is first
    clock.now += 59
    over_http.lookup(WEB)
    assert len(central_server.requests) == 1
    clock.now += 1
    assert over_http.lookup(WEB) == first
    assert len(central_server.requests) == 2


def test_misses_are_cached_too_until_the_ttl(over_http: Resolver, central_server: StaticServer,
                                             clock: FakeClock) -> None:
    for _ in range(3):
        with pytest.raises(ResolutionError):
            over_http.lookup(MISSING)
    assert len(central_server.requests) == 1
    clock.now += 60
    with pytest.raises(ResolutionError):
        over_http.lookup(MISSING)
    assert len(central_server.requests) == 2


def test_no_ttl_means_entries_stay(central_server: StaticServer, clock: FakeClock) -> None:
    with Resolver([StaticHttpRepository(central_server.url)], cache_ttl=None, clock=clock) as resolver:
        resolver.lookup(WEB)
        clock.now += 10**9
        resolver.lookup(WEB)
    assert len(central_server.requests) == 1


def test_cache_size_is_an_lru(central_server: StaticServer) -> None:
    link = SchemaKey.parse("iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1")
    with Resolver([StaticHttpRepository(central_server.url)], cache_size=1) as resolver:
        resolver.lookup(WEB)
        resolver.lookup(link)
        resolver.lookup(link)
        resolver.lookup(WEB)
    assert central_server.paths() == [f"/schemas/{WEB.path}", f"/schemas/{link.path}", f"/schemas/{WEB.path}"]


def test_cache_size_zero_disables_caching(central_server: StaticServer) -> None:
    with Resolver([StaticHttpRepository(central_server.url)], cache_size=0) as resolver:
        resolver.lookup(WEB)
        resolver.lookup(WEB)
    assert len(central_server.requests) == 2


def test_lookup_history_has_snowplows_shape(acme_repo: Path) -> None:
    resolver = Resolver([LocalRepository(acme_repo, name="Acme")])
    with pytest.raises(ResolutionError) as info:
        resolver.lookup(MISSING)
    history = info.value.lookup_history
    assert [entry["repository"] for entry in history] == ["Acme", EMBEDDED_NAME]  # sorted by name, as Snowplow
    for entry in history:
        assert set(entry) == {"repository", "errors", "attempts", "lastAttempt"}
        assert entry["errors"] == [{"error": "NotFound"}]
        assert entry["attempts"] == 1
        assert ISO_MILLIS.fullmatch(entry["lastAttempt"])
    error = info.value.to_json()
    assert error["schemaKey"] == MISSING.uri
    assert error["error"] == {"error": "ResolutionError", "lookupHistory": history}


class Recorder:
    """A repository double that records which repositories were asked, in order."""

    def __init__(self, log: list[str], name: str, priority: int, prefixes: list[str], class_priority: int,
                 schemas: dict[SchemaKey, dict[str, Any]] | None = None) -> None:
        self.log = log
        self.name = name
        self.priority = priority
        self.vendor_prefixes = tuple(prefixes)
        self.class_priority = class_priority
        self.schemas = schemas or {}

    def lookup(self, key: SchemaKey) -> dict[str, Any] | None:
        self.log.append(self.name)
        return self.schemas.get(key)

    def list_versions(self, vendor: str, name: str, model: int) -> list[SchemaKey] | None:
        return None

    def close(self) -> None:
        return None


def test_order_is_vendor_prefix_then_local_before_http_then_priority() -> None:
    log: list[str] = []
    repos: list[Repository] = [
        Recorder(log, "http-0", 0, [], 100),
        Recorder(log, "http-acme-5", 5, ["com.acme"], 100),
        Recorder(log, "local-9", 9, [], 1),
        Recorder(log, "http-acme-1", 1, ["com.ac"], 100),
        Recorder(log, "local-acme-7", 7, ["com.acme"], 1),
        Recorder(log, "local-3", 3, [], 1),
        Recorder(log, "http-other", 0, ["com.other"], 100),
    ]
    resolver = Resolver(repos, preferred=[Recorder(log, "pinned", 99, [], 100)])
    with pytest.raises(ResolutionError):
        resolver.lookup(MISSING)
    assert log == ["pinned", "local-acme-7", "http-acme-1", "http-acme-5", "local-3", "local-9", "http-0",
                   "http-other"]


def test_the_first_repository_with_the_schema_wins() -> None:
    log: list[str] = []
    schema = {"type": "object"}
    repos: list[Repository] = [Recorder(log, "a", 0, [], 1), Recorder(log, "b", 1, [], 1, {PING: schema}), Recorder(log, "c", 2, [], 1)]
    assert Resolver(repos, preferred=[]).lookup(PING) is schema
    assert log == ["a", "b"]


def test_default_resolver_puts_extra_dirs_after_embedded_and_before_iglu_central(acme_repo: Path) -> None:
    with Resolver.default([acme_repo]) as resolver:
        order = resolver.repositories_for("com.snowplowanalytics.snowplow")
        assert [type(repo).__name__ for repo in order] == [
            "EmbeddedRepository", "LocalRepository", "StaticHttpRepository"]
        central = order[2]
        assert isinstance(central, StaticHttpRepository)
        assert (central.name, central.base, central.vendor_prefixes) == (
            "Iglu Central", "http://iglucentral.com", ("com.snowplowanalytics",))
        assert resolver.lookup(PING) is not None  # from the extra dir, no network


def test_a_down_server_raises_unavailable_after_retries(central_server: StaticServer) -> None:
    central_server.status = 503
    sleeps: list[float] = []
    now = [1000.0]
    with Resolver([StaticHttpRepository(central_server.url, name="flaky")], retries=3, retry_backoff=0.5,
                  sleep=sleeps.append, clock=lambda: now[0], unavailable_cooldown=30) as resolver:
        with pytest.raises(RepositoryUnavailable, match=r"flaky: GET .* HTTP 503"):
            resolver.lookup(WEB)
        assert len(central_server.requests) == 4
        assert sleeps == [0.5, 1.0, 2.0]
        with pytest.raises(RepositoryUnavailable, match="HTTP 503"):  # in its cooldown: not asked again
            resolver.lookup(WEB)
        assert len(central_server.requests) == 4
        now[0] += 31  # unavailability is never cached as "not found": after the cooldown it is asked again
        with pytest.raises(RepositoryUnavailable):
            resolver.lookup(WEB)
        central_server.status = None
        now[0] += 31
        assert resolver.lookup(WEB)["self"]["name"] == "web_page"
    assert len(central_server.requests) == 9


def test_a_refused_connection_raises_unavailable(dead_url: str) -> None:
    with Resolver([StaticHttpRepository(dead_url, name="dead")], retry_backoff=0) as resolver, \
            pytest.raises(RepositoryUnavailable, match="dead"):
        resolver.lookup(WEB)


def test_unavailable_repository_does_not_matter_when_another_has_the_schema(dead_url: str) -> None:
    repos = [StaticHttpRepository(dead_url, priority=0), LocalRepository(IGLU_CENTRAL)]
    with Resolver(repos, retry_backoff=0) as resolver:
        assert resolver.lookup(WEB)["self"]["name"] == "web_page"  # local is asked before HTTP


def test_recovery_after_an_outage(central_server: StaticServer) -> None:
    central_server.status = 500
    with Resolver([StaticHttpRepository(central_server.url)], retries=0, unavailable_cooldown=0) as resolver:
        with pytest.raises(RepositoryUnavailable):
            resolver.lookup(WEB)
        central_server.status = None
        assert resolver.lookup(WEB)["self"]["name"] == "web_page"


def test_a_schema_whose_self_is_another_schema_is_skipped(tmp_path: Path, acme_repo: Path) -> None:
    write_schema(tmp_path / "liar", PING.uri, {"type": "string"}, self_uri="iglu:com.acme/pong/jsonschema/1-0-0")
    resolver = Resolver([LocalRepository(tmp_path / "liar", name="liar", priority=0),
                         LocalRepository(acme_repo, name="acme", priority=1)])
    assert resolver.lookup(PING)["self"]["name"] == "ping"
    resolver = Resolver([LocalRepository(tmp_path / "liar", name="liar")])
    with pytest.raises(ResolutionError) as info:
        resolver.lookup(PING)
    liar = next(entry for entry in info.value.lookup_history if entry["repository"] == "liar")
    assert liar["errors"][0]["error"] == "RepoFailure"
    assert "iglu:com.acme/pong/jsonschema/1-0-0" in liar["errors"][0]["message"]


def test_invalid_json_in_a_repository_is_a_repo_failure(tmp_path: Path) -> None:
    write_schema(tmp_path, PING.uri, {}).write_text("{oops")
    with pytest.raises(ResolutionError) as info:
        Resolver([LocalRepository(tmp_path, name="broken")]).lookup(PING)
    broken = next(entry for entry in info.value.lookup_history if entry["repository"] == "broken")
    assert broken["errors"][0]["error"] == "RepoFailure"


def test_resolve_follows_superseded_by(acme_repo: Path) -> None:
    resolver = Resolver([LocalRepository(acme_repo)])
    resolved = resolver.resolve(SchemaKey.parse("iglu:com.acme/event/jsonschema/1-0-0"))
    assert resolved.superseded_by == SchemaVer(1, 0, 1)
    assert resolved.schema["self"]["version"] == "1-0-1"
    assert resolved.schema_key.uri == "iglu:com.acme/event/jsonschema/1-0-1"


@pytest.mark.parametrize("superseding", ["1-0-0", "0-9-9", "one", 3])
def test_superseded_by_must_be_a_later_version(tmp_path: Path, superseding: object) -> None:
    write_schema(tmp_path, PING.uri, {"type": "object", "$supersededBy": superseding})
    with pytest.raises(ValidationError) as info:
        Resolver([LocalRepository(tmp_path)]).resolve(PING)
    assert info.value.schema_issues is not None
    assert info.value.schema_issues[0]["path"] == "$.$supersededBy"


def test_missing_superseding_schema_is_a_resolution_error_for_the_original_key(tmp_path: Path) -> None:
    write_schema(tmp_path, PING.uri, {"type": "object", "$supersededBy": "1-0-5"})
    with pytest.raises(ResolutionError) as info:
        Resolver([LocalRepository(tmp_path)]).resolve(PING)
    assert info.value.key == PING


def test_list_versions_merges_the_repositories_that_can_list(acme_server: StaticServer, tmp_path: Path) -> None:
    write_schema(tmp_path, "iglu:com.acme/event/jsonschema/1-1-0", {"type": "object"})
    repos = [IgluServerRepository(acme_server.url), LocalRepository(tmp_path)]
    with Resolver(repos) as resolver:
        assert [str(k.version) for k in resolver.list_versions("com.acme", "event", 1)] == ["1-0-0", "1-0-1", "1-1-0"]
