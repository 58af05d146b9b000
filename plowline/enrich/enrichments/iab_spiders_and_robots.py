"""IAB spiders & robots: classify an event's IP and useragent with the IAB/ABC spiders and bots lists."""

from __future__ import annotations

import bisect
import csv
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError, EnrichmentFailure
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

SPIDERS_AND_ROBOTS_SCHEMA = "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"
FILES = {  # parameter → the only database name the config schema allows
    "ipFile": "ip_exclude_current_cidr.txt",
    "excludeUseragentFile": "exclude_current.txt",
    "includeUseragentFile": "include_current.txt",
}
PRIMARY_IMPACTS = {"0": "PAGE_IMPRESSIONS", "1": "AD_IMPRESSIONS", "2": "PAGE_AND_AD_IMPRESSIONS"}
IAB_ENCODING = "iso-8859-1"  # the IAB files are Latin-1, as the IAB Java client reads them
UA_CACHE_SIZE = 20_000
_PREFIX = 3
_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{1,4})")
_IPV4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d+")
_IPV6_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::\d+)?")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Verdict:
    """The entity's four values."""

    spider_or_robot: bool
    category: str
    reason: str
    primary_impact: str

    def to_entity(self) -> SelfDescribingJson:
        return {"schema": SPIDERS_AND_ROBOTS_SCHEMA, "data": {
            "spiderOrRobot": self.spider_or_robot, "category": self.category,
            "reason": self.reason, "primaryImpact": self.primary_impact}}


BROWSER = Verdict(False, "BROWSER", "PASSED_ALL", "NONE")
IP_EXCLUDED = Verdict(True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")
UA_NOT_INCLUDED = Verdict(True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")
CUSTOM_UA_EXCLUDED = Verdict(True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")


def parse_inactive_date(text: str | None) -> datetime | None:
    """`MM/dd/yyyy` as midnight UTC; None when empty or unreadable (the Java client parses leniently, quietly)."""
    if not text:
        return None
    match = _DATE.match(text)
    if match is None:
        return None
    month, day, year = (int(part) for part in match.groups())
    try:
        return datetime.combine(date(year, month, day), datetime.min.time(), UTC)
    except ValueError:
        return None


def _records(lines: Iterable[str]) -> Iterator[list[str]]:
    """Pipe-separated records (CSV quoting), `#` comment lines and blank lines skipped, fields trimmed."""
    for record in csv.reader((line for line in lines if not line.startswith("#")), delimiter="|", quotechar='"'):
        if record and any(record):
            yield [value.strip() for value in record]


def _field(record: list[str], index: int) -> str | None:
    return record[index] if index < len(record) else None


def _flag(record: list[str], index: int) -> bool:
    return _field(record, index) == "1"


@dataclass(frozen=True, slots=True)
class IncludeRecord:
    """`include_current.txt`: pattern | active flag | start-of-string flag | inactive date."""

    pattern: str
    active: bool
    start_of_string: bool
    inactive_after: datetime | None

    @classmethod
    def from_record(cls, record: list[str]) -> IncludeRecord:
        return cls(record[0].lower(), _flag(record, 1), _flag(record, 2), parse_inactive_date(_field(record, 3)))

    def matches(self, useragent: str) -> bool:
        return useragent.startswith(self.pattern) if self.start_of_string else self.pattern in useragent

    def valid_at(self, when: datetime) -> bool:
        return self.active or (self.inactive_after is not None and when < self.inactive_after)


@dataclass(frozen=True, slots=True)
class ExcludeRecord:
    """`exclude_current.txt`: pattern | active flag | exception patterns (comma-separated) | unused |
    primary impact flag (0 page, 1 ad, 2 both) | start-of-string flag | inactive date."""

    pattern: str
    active: bool
    exceptions: tuple[str, ...]
    impact_flag: str | None
    start_of_string: bool
    inactive_after: datetime | None

    @classmethod
    def from_record(cls, record: list[str]) -> ExcludeRecord:
        exceptions = tuple(part.strip().lower() for part in (_field(record, 2) or "").split(",") if part.strip())
        return cls(record[0].lower(), _flag(record, 1), exceptions, _field(record, 4), _flag(record, 5),
                   parse_inactive_date(_field(record, 6)))

    def matches(self, useragent: str) -> bool:
        # A record that is inactive and has no inactive date never matches.
        if not self.active and self.inactive_after is None:
            return False
        found = useragent.startswith(self.pattern) if self.start_of_string else self.pattern in useragent
        return found and not any(exception in useragent for exception in self.exceptions)

    def verdict_at(self, when: datetime) -> Verdict:
        impact = PRIMARY_IMPACTS.get(self.impact_flag or "")
        if impact is None:
            # The IAB Java client fails the lookup the same way when a matching record has a bad flag.
            raise EnrichmentFailure([{"error": f"Invalid value of impression flag: '{self.impact_flag}'"}])
        active = self.inactive_after is None or when < self.inactive_after
        category = "ACTIVE_SPIDER_OR_ROBOT" if active else "INACTIVE_SPIDER_OR_ROBOT"
        return Verdict(True, category, "FAILED_UA_EXCLUDE", impact)


class IpRanges:
    """`ip_exclude_current_cidr.txt`: one address or CIDR block per line; host bits of a block are ignored.

    Blocks are merged into sorted integer intervals per IP version so a lookup is one bisection.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        intervals: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"line {number}: {text!r} is neither an IP address nor a CIDR block") from None
            intervals[network.version].append((int(network.network_address), int(network.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, spans in intervals.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[version] = [start for start, _ in merged]
            self._ends[version] = [end for _, end in merged]

    def __contains__(self, address: IpAddress) -> bool:
        value = int(address)
        starts = self._starts[address.version]
        index = bisect.bisect_right(starts, value) - 1
        return index >= 0 and value <= self._ends[address.version][index]


def parse_ip(text: str | None) -> IpAddress | None:
    """An IP address without DNS: plain v4/v6, `v4:port`, `[v6]:port`; a v4-mapped v6 counts as v4."""
    if not text:
        return None
    text = text.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        match = _IPV4_PORT.fullmatch(text) or _IPV6_PORT.fullmatch(text)
        if match is None:
            return None
        try:
            address = ipaddress.ip_address(match.group(1))
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class _PatternIndex:
    """Finds the records whose pattern may occur in a useragent through the pattern's first three
    characters, so a lookup costs one dict probe per useragent position instead of one substring
    search per record (the real exclude list has thousands)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._short: list[int] = []
        self._by_prefix: dict[str, list[int]] = {}
        for index, pattern in enumerate(patterns):
            if len(pattern) < _PREFIX:
                self._short.append(index)
            else:
                self._by_prefix.setdefault(pattern[:_PREFIX], []).append(index)

    def candidates(self, text: str) -> list[int]:
        """Indexes (ascending) of every record whose pattern occurs in `text`, and maybe a few more."""
        found = set(self._short)
        probe = self._by_prefix.get
        for start in range(len(text) - _PREFIX + 1):
            indexes = probe(text[start:start + _PREFIX])
            if indexes:
                found.update(indexes)
        return sorted(found)


@dataclass(frozen=True, slots=True)
class _UseragentFacts:
    """What the lists say about one lowercased useragent, whatever the event's time."""

    custom_include: bool
    custom_exclude: bool
    includes: tuple[IncludeRecord, ...]
    exclude: ExcludeRecord | None


class IabSpidersAndRobots:
    """Adds one `iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0` entity per event.

    Inputs: `useragent`, `user_ipaddress` (before anonymisation) and `derived_tstamp` (the time an
    inactive list entry is judged at). Skipped when derived_tstamp is missing or there is neither a
    useragent nor a readable IP. Decision, first that applies: custom `includeUseragents` → browser;
    custom `excludeUseragents` → robot (FAILED_UA_EXCLUDE); IP in the IP file → FAILED_IP_EXCLUDE;
    no useragent → browser; useragent in no valid include record → FAILED_UA_INCLUDE; in an exclude
    record → FAILED_UA_EXCLUDE (active or inactive at that time); else browser. Useragent patterns are
    case-insensitive substrings (or prefixes, by the record's flag). Never resolves names over DNS.
    """

    config_name: ClassVar[str] = "iab_spiders_and_robots_enrichment"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow.enrichments/iab_spiders_and_robots_enrichment/jsonschema/1-0-*")

    def __init__(self, ip_ranges: IpRanges, includes: Sequence[IncludeRecord], excludes: Sequence[ExcludeRecord],
                 include_useragents: Sequence[str] = (), exclude_useragents: Sequence[str] = ()) -> None:
        self.ip_ranges = ip_ranges
        self.includes = tuple(includes)
        self.excludes = tuple(excludes)
        self._include_index = _PatternIndex([record.pattern for record in self.includes])
        self._exclude_index = _PatternIndex([record.pattern for record in self.excludes])
        self.include_useragents = tuple(pattern.lower() for pattern in include_useragents)
        self.exclude_useragents = tuple(pattern.lower() for pattern in exclude_useragents)
        # Scanning the lists costs far more than an event's other work; useragents repeat, so cache.
        self._facts = functools.lru_cache(maxsize=UA_CACHE_SIZE)(self._useragent_facts)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        prefix = f"{cls.config_name}.parameters"
        paths = {name: _asset(parameters.get(name), f"{prefix}.{name}", database, assets)
                 for name, database in FILES.items()}
        try:
            ip_ranges = IpRanges(_lines(paths["ipFile"], f"{prefix}.ipFile"))
        except ValueError as exc:
            raise EnrichmentConfigError(f"{prefix}.ipFile", f"{paths['ipFile']}: {exc}",
                                        "use the IAB ip_exclude_current_cidr.txt (one IP or CIDR per line)") from None
        includes = [IncludeRecord.from_record(record) for record in
                    _records(_lines(paths["includeUseragentFile"], f"{prefix}.includeUseragentFile"))]
        excludes = [ExcludeRecord.from_record(record) for record in
                    _records(_lines(paths["excludeUseragentFile"], f"{prefix}.excludeUseragentFile"))]
        custom = {name: _patterns(parameters.get(name), f"{prefix}.{name}")
                  for name in ("includeUseragents", "excludeUseragents")}
        return cls(ip_ranges, includes, excludes, custom["includeUseragents"], custom["excludeUseragents"])

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        when = event.derived_tstamp
        if when is None:
            return []
        useragent = event.useragent if event.useragent and not event.useragent.isspace() else None
        address = parse_ip(event.user_ipaddress)
        if useragent is None and address is None:
            return []
        return [self.classify(useragent, address, when).to_entity()]

    def classify(self, useragent: str | None, address: IpAddress | None, when: datetime) -> Verdict:
        facts = self._facts(useragent.lower()) if useragent is not None else None
        if facts is not None and facts.custom_include:
            return BROWSER
        if facts is not None and facts.custom_exclude:
            return CUSTOM_UA_EXCLUDED
        if address is not None and address in self.ip_ranges:
            return IP_EXCLUDED
        if facts is None:
            return BROWSER
        if not any(record.valid_at(when) for record in facts.includes):
            return UA_NOT_INCLUDED
        if facts.exclude is not None:
            return facts.exclude.verdict_at(when)
        return BROWSER

    def _useragent_facts(self, useragent: str) -> _UseragentFacts:
        return _UseragentFacts(
            custom_include=any(pattern in useragent for pattern in self.include_useragents),
            custom_exclude=any(pattern in useragent for pattern in self.exclude_useragents),
            includes=tuple(self.includes[index] for index in self._include_index.candidates(useragent)
                           if self.includes[index].matches(useragent)),
            exclude=next((self.excludes[index] for index in self._exclude_index.candidates(useragent)
                          if self.excludes[index].matches(useragent)), None),
        )


def _asset(spec: Any, key: str, database: str, assets: AssetStore) -> Path:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("uri"), str):
        raise EnrichmentConfigError(key, f"must be {{\"database\": \"{database}\", \"uri\": \"...\"}}, got {spec!r}",
                                    f"point uri at the folder (or bucket) holding the licensed IAB file {database}")
    if spec.get("database") != database:
        raise EnrichmentConfigError(f"{key}.database", f"must be {database!r}, got {spec.get('database')!r}",
                                    f'set "database": "{database}"')
    return assets.path(spec["uri"], database)


def _lines(path: Path, key: str) -> list[str]:
    try:
        return path.read_text(encoding=IAB_ENCODING).splitlines()
    except OSError as exc:
        raise EnrichmentConfigError(key, f"cannot read the IAB file {path}: {exc.strerror or exc}",
                                    "check the file exists and is readable") from None


def _patterns(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EnrichmentConfigError(key, f"must be a list of useragent substrings, got {value!r}",
                                    'e.g. ["my-monitoring-bot/1.0"]')
    return value
