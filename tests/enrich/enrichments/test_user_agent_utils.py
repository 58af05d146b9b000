"""user_agent_utils_config: legacy br_*/os_*/dvce_* fields in UserAgentUtils' vocabulary (approximated, spec 5.5)."""

from __future__ import annotations

from typing import Any

import pytest

from plowline.enrich.enrichments.user_agent_utils import LegacyFields, UserAgentUtilsConfig
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import NoAssets, raw_event, valid_parameters, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow/user_agent_utils_config/jsonschema/1-0-0"

CASES = {
    # The Java library's values in Snowplow's own test (UnstructEventCfLineSpec): matched exactly.
    "snowplow vector, firefox 12 on windows 7": (
        "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:12.0) Gecko/20100101 Firefox/12.0",
        LegacyFields("Firefox 12", "Firefox", "12.0", "Browser", "GECKO", "Windows 7", "Windows",
                     "Microsoft Corporation", "Computer", False)),
    "chrome on windows 10": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36",
        LegacyFields("Chrome 120", "Chrome", "120.0.0.0", "Browser", "BLINK", "Windows 10", "Windows",
                     "Microsoft Corporation", "Computer", False)),
    "safari on a mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
        "Safari/605.1.15",
        LegacyFields("Safari 17", "Safari", "17.1", "Browser", "WEBKIT", "Mac OS X", "Mac OS X", "Apple Inc.",
                     "Computer", False)),
    "mobile safari on an iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 5_1_1 like Mac OS X) AppleWebKit/534.46 (KHTML, like Gecko) "
        "Version/5.1 Mobile/9B206 Safari/7534.48.3",
        LegacyFields("Mobile Safari", "Safari", "5.1", "Browser (mobile)", "WEBKIT", "iOS 5 (iPhone)", "iOS",
                     "Apple Inc.", "Mobile", True)),
    "ipad": (
        "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 "
        "Mobile/15E148 Safari/604.1",
        LegacyFields("Mobile Safari", "Safari", "16.0", "Browser (mobile)", "WEBKIT", "iOS 16 (iPad)", "iOS",
                     "Apple Inc.", "Tablet", True)),
    "chrome on an android phone": (
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
        "Mobile Safari/537.36",
        LegacyFields("Chrome Mobile", "Chrome", "119.0.0.0", "Browser (mobile)", "BLINK", "Android 13.x", "Android",
                     "Google Inc.", "Mobile", True)),
    "android tablet": (
        "Mozilla/5.0 (Linux; Android 9; SM-T820) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
        "Safari/537.36",
        LegacyFields("Chrome 119", "Chrome", "119.0.0.0", "Browser (mobile)", "BLINK", "Android 9.x", "Android",
                     "Google Inc.", "Tablet", True)),
    "internet explorer 11": (
        "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
        LegacyFields("Internet Explorer 11", "Internet Explorer", "11.0", "Browser", "TRIDENT", "Windows 7",
                     "Windows", "Microsoft Corporation", "Computer", False)),
    "googlebot": (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        LegacyFields("Googlebot 2", "Googlebot", "2.1", "Robot", "OTHER", "Unknown", "Unknown", "Other",
                     "Unknown", False)),
    "curl": ("curl/7.68.0", LegacyFields("curl 7", "curl", "7.68.0", "Downloading tool", "OTHER", "Unknown",
                                         "Unknown", "Other", "Unknown", False)),
    "thunderbird": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Thunderbird/115.0",
        LegacyFields("Thunderbird 115", "Thunderbird", "115.0", "Email Client", "GECKO", "Windows 10", "Windows",
                     "Microsoft Corporation", "Computer", False)),
    "firefox on ubuntu": (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/119.0",
        LegacyFields("Firefox 119", "Firefox", "119.0", "Browser", "GECKO", "Ubuntu", "Linux", "Canonical Ltd.",
                     "Computer", False)),
    "game console": (
        "Mozilla/5.0 (PlayStation 4 3.11) AppleWebKit/537.73 (KHTML, like Gecko)",
        LegacyFields("Unknown", "Unknown", None, "unknown", "WEBKIT", "Unknown", "Unknown", "Other", "Game console",
                     False)),
    "unrecognisable": ("???", LegacyFields("Unknown", "Unknown", None, "unknown", "OTHER", "Unknown", "Unknown",
                                           "Other", "Unknown", False)),
}


@pytest.fixture(scope="module")
def legacy() -> UserAgentUtilsConfig:
    return UserAgentUtilsConfig.from_config(valid_parameters(SCHEMA, {}), NoAssets())


@pytest.mark.parametrize(("useragent", "expected"), list(CASES.values()), ids=list(CASES))
def test_fields(legacy: UserAgentUtilsConfig, useragent: str, expected: LegacyFields) -> None:
    event = web_event(useragent=useragent)
    assert legacy.enrich(event, raw_event()) == ()
    assert LegacyFields(*(getattr(event, name) for name in LegacyFields._fields)) == expected


def test_no_useragent_sets_nothing(legacy: UserAgentUtilsConfig) -> None:
    event = web_event()
    legacy.enrich(event, raw_event())
    assert event.br_name is None and event.dvce_ismobile is None


@pytest.mark.parametrize("parameters", [{"x": 1}, {"database": "a"}])
def test_parameters_must_be_empty(parameters: dict[str, Any]) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        UserAgentUtilsConfig.from_config(parameters, NoAssets())
    assert raised.value.key == f"parameters.{next(iter(parameters))}"
