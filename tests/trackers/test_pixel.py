"""The no-JavaScript pixel: `plowline pixel` URLs and <img> tags, fetched by a real HTTP client from a real
collector, enriched by the real pipeline; and `plowline send` against a real collector."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from plowline.enrich.pipeline import Pipeline
from plowline.trackers.pixel import PIXEL_TRACKER_VERSION, StructFields, img_tag, pixel_url
from tests.e2e.support import enrich_records, events_by_eid, raw_records, wait_for_events
from tests.support.collector_process import CollectorProcess, free_port
from tests.support.plowline_cli import run_plowline

PAGE_URL = "https://news.example/spring?utm_source=mail&x=a+b&ü=1#top"
PAGE_TITLE = 'Spring "sale" & more <ü>'
GIF_SIGNATURE = b"GIF89a"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def pixel_cli(tmp_path: Path, *args: str) -> str:
    done = run_plowline(["pixel", *args], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def fetch(url: str) -> None:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif" and response.content.startswith(GIF_SIGNATURE)


def test_pixel_url_encoding() -> None:
    url = pixel_url("https://c.example/", PAGE_URL, page_title=PAGE_TITLE, app_id="mail app",
                    struct=StructFields.parse("email, open ,spring sale,,1.50"))
    base, query = url.split("?", 1)
    assert base == "https://c.example/i"
    # Percent-encoded UTF-8, spaces as %20; no raw reserved character left in a value.
    assert " " not in query and "+" not in query and "%20" in query and "%C3%BC" in query
    pairs = parse_qsl(query, strict_parsing=True)
    assert pairs == [("e", "se"), ("url", PAGE_URL), ("page", PAGE_TITLE), ("aid", "mail app"), ("p", "web"),
                     ("tv", PIXEL_TRACKER_VERSION), ("se_ca", "email"), ("se_ac", "open"), ("se_la", "spring sale"),
                     ("se_va", "1.50")]
    assert "eid=" not in query and "dtm=" not in query
    assert StructFields.parse("a,b") == StructFields("a", "b")
    for bad in ("a", ",b", "a,b,c,d,e,f", "a,b,c,d,notanumber", "a,b,,,nan"):
        with pytest.raises(ValueError):
            StructFields.parse(bad)
    with pytest.raises(ValueError):
        pixel_url("ftp://c.example", PAGE_URL)


def test_img_tag_is_valid_html_with_the_same_url() -> None:
    url = pixel_url("http://c.example", PAGE_URL, page_title=PAGE_TITLE, app_id="a&b")
    tag = img_tag(url)
    assert "&amp;" in tag and "&e=" not in tag  # every & of the URL escaped in the attribute
    parser = _Tags()
    parser.feed(tag)
    parser.close()
    assert parser.text == ""
    assert parser.tags == [("img", {"src": url, "width": "1", "height": "1", "alt": "", "style": "border:0"})]


@pytest.mark.e2e
def test_page_view_pixel_enriches(tmp_path: Path, collector: CollectorProcess, enrich_pipeline: Pipeline) -> None:
    url = pixel_cli(tmp_path, "--collector", collector.base_url, "--page-url", PAGE_URL, "--page-title", PAGE_TITLE,
                    "--app-id", "newsletter")
    assert urlsplit(url).path == "/i" and "eid=" not in url and "dtm=" not in url
    tag = pixel_cli(tmp_path, "--collector", collector.base_url, "--page-url", PAGE_URL, "--page-title", PAGE_TITLE,
                    "--app-id", "newsletter", "--tag")
    parser = _Tags()
    parser.feed(tag)
    [(name, attributes)] = parser.tags
    assert name == "img" and attributes["src"] == url

    fetch(url)
    fetch(str(attributes["src"]))  # the e-mail is opened twice: two events
    payloads = wait_for_events(collector, 2, timeout_s=60)
    assert len(payloads) == 2 and all(payload.path == "/i" for payload in payloads)
    good, bad = enrich_records(enrich_pipeline, raw_records(collector))
    assert bad == [] and len(good) == 2, "each fetch of a static pixel is its own event"
    for event in good.values():
        assert (event.event, event.page_url, event.page_title, event.app_id, event.platform, event.v_tracker) == (
            "page_view", PAGE_URL, PAGE_TITLE, "newsletter", "web", PIXEL_TRACKER_VERSION)
        assert (event.page_urlhost, event.page_urlpath, event.page_urlfragment) == ("news.example", "/spring", "top")
        assert event.mkt_source == "mail"
        assert event.dvce_created_tstamp is None and event.derived_tstamp == event.collector_tstamp
    # The derived event_id is deterministic: enriching the same raw records again gives the same ids.
    again, _ = enrich_records(enrich_pipeline, raw_records(collector))
    assert set(again) == set(good)


@pytest.mark.e2e
def test_struct_pixel_enriches(tmp_path: Path, collector: CollectorProcess, enrich_pipeline: Pipeline) -> None:
    url = pixel_cli(tmp_path, "--collector", collector.base_url, "--page-url", PAGE_URL, "--page-title", PAGE_TITLE,
                    "--app-id", "newsletter", "--struct", "email,open,spring sale,hero image,2.5", "--event-id")
    baked_eid = dict(parse_qsl(urlsplit(url).query))["eid"]
    fetch(url)
    raw = events_by_eid(wait_for_events(collector, 1, timeout_s=60))
    assert list(raw) == [baked_eid]
    good, bad = enrich_records(enrich_pipeline, raw_records(collector))
    assert bad == []
    [event] = good.values()
    assert event.event_id == baked_eid
    assert (event.event, event.se_category, event.se_action, event.se_label, event.se_property, event.se_value) == (
        "struct", "email", "open", "spring sale", "hero image", Decimal("2.5"))
    assert (event.page_url, event.page_title, event.app_id) == (PAGE_URL, PAGE_TITLE, "newsletter")


def test_pixel_cli_refuses_bad_input(tmp_path: Path) -> None:
    done = run_plowline(["pixel", "--page-url", "https://x.example/", "--struct", "only-category"], cwd=tmp_path)
    assert done.returncode == 2 and "category,action" in done.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["post", "get"])
def test_send_command(tmp_path: Path, collector: CollectorProcess, enrich_pipeline: Pipeline, method: str) -> None:
    done = run_plowline(["send", "--collector", collector.base_url, "--method", method, "--count", "3",
                         "--page-view", "https://shop.example/a", "--struct", "cli", "click",
                         "--self-describing", "iglu:com.acme/e2e_event/jsonschema/1-0-0", '{"index": 1, "text": "hi"}'],
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"9 of 9 events acknowledged by {collector.base_url}"
    wait_for_events(collector, 9, timeout_s=60)
    good, bad = enrich_records(enrich_pipeline, raw_records(collector))
    assert bad == [] and len(good) == 9
    assert sorted(event.event for event in good.values()) == ["page_view"] * 3 + ["struct"] * 3 + ["unstruct"] * 3
    assert {event.app_id for event in good.values()} == {"plowline-send"}


def test_send_reports_unacknowledged(tmp_path: Path) -> None:
    done = run_plowline(["send", "--collector", f"http://127.0.0.1:{free_port()}", "--page-view", "https://x.example/",
                         "--timeout", "1"], cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.strip().startswith("0 of 1 events acknowledged"), done
    assert run_plowline(["send"], cwd=tmp_path).returncode == 2
