"""The spec's request examples (protocol-examples.txt) as CollectorPayload records, built the way the collector does."""

from __future__ import annotations

import base64
import itertools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis import strategies as st

from plowline.payload import CollectorPayload

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "spec" / "protocol-examples.txt"
NUID = "c5f3a09f-75f8-4309-bec5-fea560f78455"
TIMESTAMP = 1665398554200


@dataclass
class Example:
    """One HTTP request of an example: what a collector would store of it."""

    method: str
    path: str
    querystring: str | None
    headers: list[str] = field(default_factory=list)
    body: str | None = None

    @property
    def content_type(self) -> str | None:
        for line in self.headers:
            name, _, value = line.partition(": ")
            if name.lower() == "content-type":
                return value
        return None

    def payload(self, **changes: object) -> CollectorPayload:
        payload = CollectorPayload(
            ip_address="203.0.113.9",
            timestamp=TIMESTAMP,
            encoding="UTF-8",
            collector="ssc-3.4.0-stdout",
            user_agent="Mozilla/5.0 (example)",
            path=self.path,
            querystring=self.querystring,
            body=self.body,
            headers=[*self.headers, *([self.content_type] if self.content_type else [])],
            content_type=self.content_type,
            hostname="collector.acme.com",
            network_user_id=NUID,
        )
        for name, value in changes.items():
            setattr(payload, name, value)
        return payload

    def record(self, **changes: object) -> bytes:
        return self.payload(**changes).to_thrift()


def section(name: str) -> str:
    text = EXAMPLES.read_text()
    return text.split(f"### {name} ", 1)[1].split("\n=====", 1)[0]


def example_base64(name: str) -> bytes:
    match = re.search(r"^BASE64:\n(\S+)", section(name), re.MULTILINE)
    assert match is not None
    return base64.b64decode(match.group(1))


def example(name: str) -> Example:
    """The request of an example given as METHOD/PATH/URL/HEADER/BODY lines or as a curl command."""
    text = section(name)
    if "\nCURL:\n" in text:
        return _curl(text.split("\nCURL:\n", 1)[1].split("\nEXPECT", 1)[0])
    method = _field(text, "METHOD") or "GET"
    target = _field(text, "URL") or _field(text, "URL-PATH+QUERY") or _field(text, "PATH")
    assert target is not None, name
    parts = urlsplit(target)
    body = None
    if "\nBODY:\n" in text:
        body = text.split("\nBODY:\n", 1)[1].split("\nEXPECT", 1)[0]
    headers = re.findall(r"^HEADER: (.*)$", text, re.MULTILINE)
    return Example(method, parts.path, parts.query if "?" in target else None, headers, body)


def _field(text: str, name: str) -> str | None:
    match = re.search(rf"^{re.escape(name)}: (.*)$", text, re.MULTILINE)
    return match.group(1) if match else None


def _curl(command: str) -> Example:
    words = shlex.split(command.replace("\\\n", " "))
    method, url, headers, body = "GET", "", [], None
    for option, value in itertools.pairwise(words):
        if option == "--request":
            method = value
        elif option == "--url":
            url = value.replace("{{COLLECTOR_URL}}", "collector.acme.com")
        elif option == "--header":
            headers.append(value)
        elif option == "--data":
            body = value
    parts = urlsplit(url)
    return Example(method, parts.path, parts.query or None, headers, body)


_FIXED_SIZES = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8}


def declares_only_what_it_holds(record: bytes) -> bool:
    """False if, read as TBinaryProtocol, the record declares a string or container longer than what
    is left of it, or a type Thrift does not have. thriftpy2 allocates or loops for a declared size
    before reading (a 9-byte record can make it take 2 GB), so property tests keep to the rest."""
    position = 0

    def value(kind: int, depth: int) -> bool:
        nonlocal position
        if depth > 16:
            return True
        if kind in _FIXED_SIZES:
            position += _FIXED_SIZES[kind]
            return True
        if kind == 11:
            size = int.from_bytes(record[position:position + 4], "big", signed=True)
            position += 4
            if size > len(record) - position:
                return False
            position += max(size, 0)
            return True
        if kind == 12:
            return struct(depth + 1)
        if kind in (13, 14, 15):
            kinds = [record[position], record[position + 1]] if kind == 13 and position + 1 < len(record) else \
                [record[position]] if position < len(record) else []
            position += len(kinds)
            count = int.from_bytes(record[position:position + 4], "big", signed=True)
            position += 4
            if count > len(record) - position:
                return False
            for _ in range(max(count, 0)):
                if position >= len(record):
                    return True
                if not all(value(k, depth + 1) for k in kinds):
                    return False
            return True
        return False  # an unknown type, which thriftpy2 also mishandles

    def struct(depth: int) -> bool:
        nonlocal position
        while position < len(record):
            kind = record[position]
            position += 3
            if kind == 0:
                return True
            if not value(kind, depth):
                return False
        return True

    return struct(0)


def _thrift_field(kind: int, field_id: int, body: bytes) -> bytes:
    return bytes([kind]) + field_id.to_bytes(2, "big", signed=True) + body


def _string(text: bytes) -> bytes:
    return len(text).to_bytes(4, "big") + text


def thrift_like_records() -> st.SearchStrategy[bytes]:
    """Byte strings that are mostly TBinaryProtocol fields (of CollectorPayload's ids or any other),
    with arbitrary contents, truncations and junk between them."""
    ids = st.sampled_from([100, 200, 210, 220, 300, 310, 320, 330, 340, 350, 360, 400, 410, 31337]) | st.integers(-5, 500)
    text = st.binary(max_size=40) | st.sampled_from(
        [b"UTF-8", b"/i", b"/com.snowplowanalytics.snowplow/tp2", b"e=pv&p=web", b"application/json",
         b"iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0", NUID.encode(), b"\xff\xfe"])
    string_field = st.builds(lambda i, t: _thrift_field(11, i, _string(t)), ids, text)
    i64_field = st.builds(lambda i, v: _thrift_field(10, i, v.to_bytes(8, "big", signed=True)), ids,
                          st.integers(-(2**63), 2**63 - 1))
    list_field = st.builds(lambda i, items: _thrift_field(15, i, b"\x0b" + len(items).to_bytes(4, "big")
                                                   + b"".join(_string(x) for x in items)),
                           ids, st.lists(text, max_size=4))
    junk = st.binary(max_size=6)
    segments = st.lists(string_field | i64_field | list_field | junk, max_size=18)
    return st.builds(lambda parts, cut: b"".join(parts)[: cut if cut else None], segments, st.integers(0, 400))
