"""CollectorPayload Thrift encode/decode against the spec's byte vectors (EX16, EX17)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.errors import PayloadDecodeError
from plowline.payload import SCHEMA_URI, CollectorPayload

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "protocol-examples.txt"


def example_base64(name: str) -> bytes:
    text = EXAMPLES.read_text()
    section = text.split(f"### {name} ")[1]
    match = re.search(r"BASE64:\n(\S+)", section)
    assert match is not None
    return base64.b64decode(match.group(1))


def test_ex16_decodes_exactly_and_re_encodes_byte_for_byte() -> None:
    raw = example_base64("EX16")
    payload = CollectorPayload.from_thrift(raw)
    assert payload.ip_address == "127.0.0.1"
    assert payload.timestamp == 1389833398278
    assert payload.encoding == "UTF-8"
    assert payload.collector == "ssc-0.0.1-Stdout"
    assert payload.user_agent is not None and payload.user_agent.endswith("Safari/537.36")
    assert payload.path == "/i"
    assert payload.querystring == "testParam=3&testParam2=4"
    assert payload.headers is not None and len(payload.headers) == 8
    assert payload.headers[0] == "Cookie: sp=c5f3a09f-75f8-4309-bec5-fea560f78455"
    assert payload.hostname == "127.0.0.1"
    assert payload.network_user_id == "c5f3a09f-75f8-4309-bec5-fea560f78455"
    assert payload.schema == SCHEMA_URI
    assert payload.body is None and payload.referer_uri is None and payload.content_type is None
    assert payload.to_thrift() == raw  # ascending field ids, stop byte last
    assert raw[-1] == 0


def test_ex17_decodes() -> None:
    raw = example_base64("EX17")
    payload = CollectorPayload.from_thrift(raw)
    assert payload.ip_address == "10.0.2.2"
    assert payload.timestamp == 1390936940040
    assert payload.network_user_id == "75a13583-5c99-40e3-81fc-541084dfc784"
    assert payload.querystring is not None and payload.querystring.startswith("e=pp&page=Asynchronous+website")
    assert payload.hostname == "localhost"
    assert payload.header("host") == "localhost:4001"
    assert payload.to_thrift() == raw


def test_base64_form_is_unpadded_like_the_stdout_sink() -> None:
    payload = CollectorPayload.from_thrift(example_base64("EX16"))
    text = payload.to_base64()
    assert not text.endswith("=")
    assert CollectorPayload.from_base64(text) == payload


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"garbage bytes", b"\x0b\x00\x64\xff\xff\xff\xff", example_base64("EX16")[:100]],
    ids=["empty", "stop-only", "text", "bad-length", "truncated"],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(PayloadDecodeError):
        CollectorPayload.from_thrift(data)


def test_wrong_schema_is_refused() -> None:
    payload = CollectorPayload("1.2.3.4", 1, "UTF-8", "c", schema="iglu:com.acme/Other/thrift/1-0-0")
    with pytest.raises(PayloadDecodeError, match="unexpected CollectorPayload schema"):
        CollectorPayload.from_thrift(payload.to_thrift())


text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200)


@given(
    ip=text, timestamp=st.integers(min_value=0, max_value=2**62), collector=text,
    user_agent=st.none() | text, path=st.none() | text, querystring=st.none() | text,
    body=st.none() | text, headers=st.none() | st.lists(text, max_size=5), network_user_id=st.none() | text,
)
def test_round_trip_of_arbitrary_payloads(
    ip: str, timestamp: int, collector: str, user_agent: str | None, path: str | None,
    querystring: str | None, body: str | None, headers: list[str] | None, network_user_id: str | None,
) -> None:
    payload = CollectorPayload(
        ip_address=ip, timestamp=timestamp, encoding="UTF-8", collector=collector, user_agent=user_agent,
        path=path, querystring=querystring, body=body, headers=headers, network_user_id=network_user_id,
    )
    assert CollectorPayload.from_thrift(payload.to_thrift()) == payload
