"""referer_parser: the lookup algorithm, mediums, internal domains, custom databases and overrides, the shipped DB."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from plowline.enrich.assets import BUILTIN_URI, LocalAssetStore
from plowline.enrich.enrichments.referer_parser import DB_MEDIUMS, RefererParser
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import TEST_DATA, FolderAssets, raw_event, valid_parameters, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow/referer_parser/jsonschema/2-0-1"
PAGE = "http://www.psychicbazaar.com/2-tarot-cards"
SHIPPED = {"internalDomains": [], "database": "referers.json", "uri": BUILTIN_URI}


def parser(**parameters: Any) -> RefererParser:
    merged = {**SHIPPED, **parameters}
    return RefererParser.from_config(valid_parameters(SCHEMA, merged), LocalAssetStore(TEST_DATA, TEST_DATA))


def classify(enrichment: RefererParser, referrer: str, page: str = PAGE) -> tuple[str | None, str | None, str | None]:
    event = web_event(page=page, referrer=referrer)
    assert enrichment.enrich(event, raw_event()) == ()
    return (event.refr_medium, event.refr_source, event.refr_term)


@pytest.fixture(scope="module")
def shipped() -> RefererParser:
    return parser(internalDomains=["blog.psychicbazaar.com"])


CASES = {
    "google search": ("http://www.google.com/search?q=gateway+oracle+cards+denise+linn&hl=en&client=safari",
                      ("search", "Google", "gateway oracle cards denise linn")),
    "google country domain": ("https://www.google.co.uk/search?q=psychic", ("search", "Google", "psychic")),
    "google without a query (modern browsers)": ("https://www.google.com/", ("search", "Google", None)),
    "host case is ignored": ("https://WWW.Google.DE/search?q=x", ("search", "Google", "x")),
    "percent-encoded utf-8 term": ("https://www.bing.com/search?q=caf%C3%A9+au+lait", ("search", "Bing", "café au lait")),
    "first matching parameter in URL order": ("https://www.google.com/search?query=first&q=second",
                                              ("search", "Google", "first")),
    "yahoo subdomain of search.yahoo.com": ("https://uk.search.yahoo.com/search?p=tarot", ("search", "Yahoo!", "tarot")),
    "yandex text": ("https://yandex.ru/search/?text=%D1%82%D0%B0%D1%80%D0%BE", ("search", "Yandex", "таро")),
    "baidu wd": ("https://www.baidu.com/s?wd=tarot", ("search", "Baidu", "tarot")),
    "duckduckgo": ("https://duckduckgo.com/", ("search", "DuckDuckGo", None)),
    "yandex service is not search": ("https://market.yandex.ru/product", ("unknown", None, None)),
    "google docs is not search": ("https://docs.google.com/document/d/1", ("unknown", None, None)),
    "google maps path is not search": ("https://www.google.com/maps/place/x", ("unknown", None, None)),
    "facebook mobile": ("http://m.facebook.com/story.php", ("social", "Facebook", None)),
    "twitter short links": ("https://t.co/abc", ("social", "Twitter", None)),
    "linkedin": ("https://www.linkedin.com/feed/", ("social", "LinkedIn", None)),
    "gmail": ("https://mail.google.com/mail/u/0/", ("email", "Gmail", None)),
    "outlook subdomain": ("https://dub130.mail.live.com/default.aspx", ("email", "Outlook.com", None)),
    "icloud mail by path": ("https://www.icloud.com/mail/", ("email", "iCloud Mail", None)),
    "icloud other path": ("https://www.icloud.com/photos/", ("unknown", None, None)),
    "paid": ("https://www.googleadservices.com/pagead/aclk?sa=L", ("paid", "Google Ads", None)),
    "chatbot": ("https://chatgpt.com/", ("chatbot", "ChatGPT", None)),
    "chatbot under a search domain": ("https://gemini.google.com/app", ("chatbot", "Gemini", None)),
    "android app referrer": ("android-app://com.google.android.gm", ("email", "Gmail", None)),
    "android search app": ("android-app://com.google.android.googlequicksearchbox/https/www.google.com",
                           ("search", "Google", None)),
    "unknown site": ("http://www.example.org/page", ("unknown", None, None)),
    "same host as the page": ("http://www.psychicbazaar.com/", ("internal", None, None)),
    "internal domain from the config": ("https://blog.psychicbazaar.com/post?q=x", ("internal", None, None)),
    "other subdomain of the site is not internal": ("https://shop.psychicbazaar.com/", ("unknown", None, None)),
    "ftp is not parsed": ("ftp://ftp.google.com/search?q=x", (None, None, None)),
}


@pytest.mark.parametrize(("referrer", "expected"), list(CASES.values()), ids=list(CASES))
def test_shipped_database(shipped: RefererParser, referrer: str, expected: tuple[str | None, ...]) -> None:
    assert classify(shipped, referrer) == expected


def test_no_referrer_sets_nothing(shipped: RefererParser) -> None:
    event = web_event(page=PAGE)
    shipped.enrich(event, raw_event())
    assert event.refr_medium is None


def test_internal_without_a_page_url(shipped: RefererParser) -> None:
    event = web_event(referrer="https://blog.psychicbazaar.com/")
    shipped.enrich(event, raw_event())
    assert event.refr_medium == "internal"


@pytest.mark.parametrize("database", ["referers.json", "referers.yml"])
def test_custom_database_file(database: str) -> None:
    enrichment = RefererParser.from_config(
        valid_parameters(SCHEMA, {"internalDomains": [], "database": database, "uri": "file:referer_parser"}),
        LocalAssetStore(TEST_DATA, TEST_DATA))
    assert classify(enrichment, "https://search.acme.com/?s=plough") == ("search", "Acme Search", "plough")
    assert classify(enrichment, "https://www.google.com/search?q=x") == ("unknown", None, None)  # only this DB


def test_unknown_medium_entry_wins_over_parent_domain() -> None:
    enrichment = RefererParser.from_config(
        {"internalDomains": [], "database": "referers.json", "uri": "x"}, FolderAssets(TEST_DATA / "referer_parser"))
    assert classify(enrichment, "https://support.search.acme.com/?q=x") == ("unknown", None, None)
    assert classify(enrichment, "https://eu.search.acme.com/?q=x") == ("search", "Acme Search", "x")


def test_path_entries_match_the_first_segment() -> None:
    enrichment = RefererParser.from_config(
        {"internalDomains": [], "database": "referers.yml", "uri": "x"}, FolderAssets(TEST_DATA / "referer_parser"))
    assert classify(enrichment, "https://www.acme.com/share/12?u=1") == ("social", "Acme Social", None)
    assert classify(enrichment, "https://www.acme.com/other") == ("unknown", None, None)


def test_inline_referrers_override_the_database(shipped: RefererParser) -> None:
    enrichment = parser(referrers={
        "search": {"Acme Search": {"domains": ["search.acme.com"], "parameters": ["s"]}},
        "social": {"Bing Social": {"domains": ["bing.com"]}},
    })
    assert classify(enrichment, "https://search.acme.com/?s=hello+world") == ("search", "Acme Search", "hello world")
    assert classify(enrichment, "https://www.bing.com/search?q=x") == ("social", "Bing Social", None)
    assert classify(enrichment, "https://www.google.com/search?q=x") == ("search", "Google", "x")


def test_shipped_database_is_well_formed() -> None:
    document = json.loads(resources.files("plowline.enrich.enrichments").joinpath("referers.json").read_text())
    assert set(document) <= set(DB_MEDIUMS)
    seen: dict[str, str] = {}
    for medium, sources in document.items():
        for source, entry in sources.items():
            assert set(entry) <= {"domains", "parameters"}, source
            assert medium != "search" or entry.get("parameters") is not None or source == "DuckDuckGo", source
            for domain in entry["domains"]:
                assert domain == domain.strip() and domain.split("/")[0] == domain.split("/")[0].lower(), domain
                assert domain not in seen, f"{domain} in {seen.get(domain)} and {source}"
                seen[domain] = source


@pytest.mark.parametrize(("document", "key"), [
    ({"spam": {"X": {"domains": ["x.com"]}}}, "database referers.json.spam"),
    ({"search": {"X": {"parameters": ["q"]}}}, "database referers.json.search.X.domains"),
    ({"search": {"X": {"domains": []}}}, "database referers.json.search.X.domains"),
    ({"search": {"X": {"domains": ["x.com"], "parameters": "q"}}}, "database referers.json.search.X.parameters"),
    ({"search": ["x.com"]}, "database referers.json.search"),
    (["x.com"], "database referers.json"),
], ids=["unknown medium", "no domains", "empty domains", "parameters not a list", "medium not an object",
        "not an object"])
def test_bad_database(tmp_path: Path, document: Any, key: str) -> None:
    (tmp_path / "referers.json").write_text(json.dumps(document))
    with pytest.raises(EnrichmentConfigError) as raised:
        RefererParser.from_config({"internalDomains": [], "database": "referers.json", "uri": "x"},
                                  FolderAssets(tmp_path))
    assert raised.value.key == key


def test_database_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "referers.json").write_text("{not json")
    with pytest.raises(EnrichmentConfigError) as raised:
        RefererParser.from_config({"internalDomains": [], "database": "referers.json", "uri": "x"},
                                  FolderAssets(tmp_path))
    assert raised.value.key == "parameters.database"


@pytest.mark.parametrize(("parameters", "key"), [
    ({"database": "referers.json", "uri": BUILTIN_URI}, "parameters.internalDomains"),
    ({"internalDomains": "example.com", "database": "referers.json", "uri": BUILTIN_URI}, "parameters.internalDomains"),
    ({"internalDomains": [], "uri": BUILTIN_URI}, "parameters.database"),
    ({"internalDomains": [], "database": "referers.json"}, "parameters.uri"),
    ({"internalDomains": [], "database": "nope.json", "uri": BUILTIN_URI}, "parameters.uri"),
    ({**SHIPPED, "referrers": {"search": {"X": {"domains": "x.com"}}}}, "parameters.referrers.search.X.domains"),
], ids=["no internalDomains", "internalDomains not a list", "no database", "no uri", "builtin file missing",
        "bad inline referrers"])
def test_bad_config_names_the_parameter(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        RefererParser.from_config(parameters, LocalAssetStore(TEST_DATA, TEST_DATA))
    assert raised.value.key == key
