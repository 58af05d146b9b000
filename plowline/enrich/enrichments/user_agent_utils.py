"""user_agent_utils_config: legacy br_*, os_*, dvce_* fields from ua-parser, mapped to UserAgentUtils-like values.

Snowplow filled these with the Java UserAgentUtils library, which is abandoned and has no Python
port. Plowline derives them from the uap-core parse instead, mapped to the same vocabulary
(`Firefox 12`, `Firefox`, `12.0`, `Browser`, `GECKO`, `Windows 7`, `Windows`,
`Microsoft Corporation`, `Computer`). Common browsers and systems get the same strings as the Java
library; rarer ones can differ (spec/enrich.md 5.5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache, partial
from typing import Any, ClassVar, NamedTuple, Self

from ua_parser import Resolver

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.enrichments.ua_parser import CACHE_SIZE, Parsed, default_resolver, parse_default, parse_with
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["LegacyFields", "UserAgentUtilsConfig", "legacy_fields"]


class LegacyFields(NamedTuple):
    br_name: str
    br_family: str
    br_version: str | None
    br_type: str
    br_renderengine: str
    os_name: str
    os_family: str
    os_manufacturer: str
    dvce_type: str
    dvce_ismobile: bool


# uap family → (UserAgentUtils group, display name, the name carries the major version)
_BROWSERS: dict[str, tuple[str, str, bool]] = {
    "Chrome": ("Chrome", "Chrome", True),
    "Chromium": ("Chrome", "Chromium", True),
    "Chrome Mobile": ("Chrome", "Chrome Mobile", False),
    "Chrome Mobile iOS": ("Chrome", "Chrome Mobile", False),
    "Chrome Mobile WebView": ("Chrome", "Chrome Mobile", False),
    "HeadlessChrome": ("Chrome", "Chrome", True),
    "Firefox": ("Firefox", "Firefox", True),
    "Firefox Mobile": ("Firefox", "Firefox Mobile", False),
    "Firefox iOS": ("Firefox", "Firefox Mobile", False),
    "Safari": ("Safari", "Safari", True),
    "Mobile Safari": ("Safari", "Mobile Safari", False),
    "Mobile Safari UI/WKWebView": ("Safari", "Apple WebKit", False),
    "IE": ("Internet Explorer", "Internet Explorer", True),
    "IE Mobile": ("Internet Explorer", "IE Mobile", False),
    "Edge": ("Microsoft Edge", "Microsoft Edge", True),
    "Edge Mobile": ("Microsoft Edge", "Microsoft Edge Mobile", False),
    "Opera": ("Opera", "Opera", True),
    "Opera Mobile": ("Opera", "Opera Mobile", False),
    "Opera Mini": ("Opera", "Opera Mini", False),
    "Samsung Internet": ("Samsung Internet", "Samsung Internet", True),
    "Android": ("Safari", "Android Browser", False),
    "Thunderbird": ("Thunderbird", "Thunderbird", True),
    "Outlook": ("Outlook", "Outlook", True),
    "Apple Mail": ("Apple Mail", "Apple Mail", False),
}
_EMAIL_CLIENTS = frozenset({"Thunderbird", "Outlook", "Apple Mail", "Airmail", "Windows Live Mail"})
_TOOLS = frozenset({"curl", "wget", "python requests", "python-urllib", "go-http-client", "okhttp",
                    "apache-httpclient", "java", "libwww-perl", "powershell"})
# uap OS family → (UserAgentUtils group, manufacturer)
_SYSTEMS: dict[str, tuple[str, str]] = {
    "Windows": ("Windows", "Microsoft Corporation"),
    "Windows Phone": ("Windows", "Microsoft Corporation"),
    "Mac OS X": ("Mac OS X", "Apple Inc."),
    "macOS": ("Mac OS X", "Apple Inc."),
    "iOS": ("iOS", "Apple Inc."),
    "iPadOS": ("iOS", "Apple Inc."),
    "watchOS": ("iOS", "Apple Inc."),
    "Android": ("Android", "Google Inc."),
    "Chrome OS": ("Chrome OS", "Google Inc."),
    "Linux": ("Linux", "Other"),
    "Ubuntu": ("Linux", "Canonical Ltd."),
    "Fedora": ("Linux", "Other"),
    "Debian": ("Linux", "Other"),
    "BlackBerry OS": ("BlackBerryOS", "Research In Motion Limited"),
    "Symbian OS": ("Symbian OS", "Symbian Ltd."),
    "Tizen": ("Tizen", "Samsung Electronics"),
}
_DESKTOP_SYSTEMS = frozenset({"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS",
                              "FreeBSD", "OpenBSD", "NetBSD", "Solaris"})
_MOBILE_TYPES = frozenset({"Mobile", "Tablet", "Wearable computer"})


def _device_type(parsed: Parsed, useragent: str) -> str:
    _, os, device = parsed
    family = device.family
    if family == "Spider":
        return "Unknown"
    if any(name in family for name in ("PlayStation", "Xbox", "Nintendo", "Wii")):
        return "Game console"
    if "TV" in family or "SMART-TV" in useragent or family in ("Roku", "Chromecast", "AppleTV"):
        return "Digital media receiver"
    if "Watch" in family or os.family == "watchOS" or "Wear OS" in useragent:
        return "Wearable computer"
    if family in ("iPad", "Kindle") or (device.brand or "").endswith("Tablet") or "Tablet" in useragent:
        return "Tablet"
    if os.family == "Android" and "Mobile" not in useragent:
        return "Tablet"  # Android browsers on tablets leave out "Mobile"
    if os.family in ("iOS", "Android", "Windows Phone", "BlackBerry OS", "Symbian OS") or "Mobile" in useragent:
        return "Mobile"
    if os.family in _DESKTOP_SYSTEMS:
        return "Computer"
    return "Unknown"


def _render_engine(useragent: str) -> str:
    if "Trident/" in useragent or "MSIE " in useragent:
        return "TRIDENT"
    if "Edge/" in useragent:
        return "EDGE_HTML"
    if "Presto/" in useragent:
        return "PRESTO"
    if "Chrome/" in useragent or "Chromium/" in useragent or "CriOS/" in useragent:
        return "BLINK"
    if "AppleWebKit/" in useragent:
        return "WEBKIT"
    if "Gecko/" in useragent or "Firefox/" in useragent:
        return "GECKO"
    if "KHTML" in useragent:
        return "KHTML"
    return "OTHER"


def _os_name(family: str, major: str | None, minor: str | None, device_type: str) -> str:
    if family == "Windows":
        return "Windows" + (f" {major}" + (f".{minor}" if minor else "") if major else "")
    if family in ("iOS", "iPadOS"):
        kind = " (iPad)" if device_type == "Tablet" else " (iPhone)"
        return f"iOS {major}{kind}" if major else "iOS"
    if family == "Android":
        return f"Android {major}.x" if major else "Android"
    if family == "macOS":
        return "Mac OS X"
    if family == "Other":
        return "Unknown"
    return family


def legacy_fields(parsed: Parsed, useragent: str) -> LegacyFields:
    """The br_*/os_*/dvce_* values for one user agent (see the module docstring for fidelity)."""
    agent, os, device = parsed
    device_type = _device_type(parsed, useragent)
    mobile = device_type in _MOBILE_TYPES
    if agent.family == "Other":
        br_name = br_family = "Unknown"
        br_version = None
    else:
        group, display, versioned = _BROWSERS.get(agent.family, (agent.family, agent.family, True))
        br_family = group
        br_name = f"{display} {agent.major}" if versioned and agent.major else display
        parts = [part for part in (agent.major, agent.minor, agent.patch, agent.patch_minor) if part is not None]
        br_version = ".".join(parts) or None
    if device.family == "Spider":
        br_type = "Robot"
    elif agent.family in _EMAIL_CLIENTS:
        br_type = "Email Client"
    elif agent.family.lower() in _TOOLS:
        br_type = "Downloading tool"
    elif agent.family == "Other":
        br_type = "unknown"
    else:
        br_type = "Browser (mobile)" if mobile else "Browser"
    os_group, manufacturer = _SYSTEMS.get(os.family, ("Unknown" if os.family == "Other" else os.family, "Other"))
    return LegacyFields(
        br_name=br_name,
        br_family=br_family,
        br_version=br_version,
        br_type=br_type,
        br_renderengine=_render_engine(useragent),
        os_name=_os_name(os.family, os.major, os.minor, device_type),
        os_family=os_group,
        os_manufacturer=manufacturer,
        dvce_type=device_type,
        dvce_ismobile=mobile,
    )


class UserAgentUtilsConfig:
    """user_agent_utils_config 1-0-0 (parameters must be `{}`): the deprecated browser/OS/device fields."""

    config_name: ClassVar[str] = "user_agent_utils_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/user_agent_utils_config/jsonschema/1-0-0")

    def __init__(self, resolver: Resolver | None = None) -> None:
        if resolver is None:
            default_resolver()  # built now (about 0.1 s), not by the first event
        self.parse: Callable[[str], Parsed] = parse_default if resolver is None else partial(parse_with, resolver)
        self.fields: Callable[[str], LegacyFields] = lru_cache(maxsize=CACHE_SIZE)(self._fields)

    def _fields(self, useragent: str) -> LegacyFields:
        return legacy_fields(self.parse(useragent), useragent)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        if parameters:
            raise EnrichmentConfigError(f"parameters.{next(iter(parameters))}", "user_agent_utils takes no parameters",
                                        'set "parameters": {}')
        return cls()

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        useragent = event.useragent
        if useragent is None:
            return ()
        fields = self.fields(useragent)
        event.br_name, event.br_family, event.br_version = fields.br_name, fields.br_family, fields.br_version
        event.br_type, event.br_renderengine = fields.br_type, fields.br_renderengine
        event.os_name, event.os_family, event.os_manufacturer = fields.os_name, fields.os_family, fields.os_manufacturer
        event.dvce_type, event.dvce_ismobile = fields.dvce_type, fields.dvce_ismobile
        return ()
