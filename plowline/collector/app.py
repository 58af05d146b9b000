"""The collector's ASGI app: the route table in one place, and the tracking request algorithm.

The hot path is hand-written ASGI rather than a framework router: a tracking request does the
least possible work (read headers, build one CollectorPayload, wait until it is durable, answer),
as spec/protocol.md section 3 describes Snowplow's collector doing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from plowline import __version__, badrows
from plowline.collector.cookies import decide_identity, parse_cookie_header, set_cookie_headers
from plowline.collector.limits import fit_to_sink
from plowline.collector.metrics import CollectorMetrics
from plowline.collector.request import BodyTooLarge, Receive, TrackingRequest, read_body, read_request
from plowline.collector.responses import (
    IMAGE_GIF,
    NO_CACHE,
    PIXEL,
    ROBOTS_TXT,
    TEXT_PLAIN,
    Headers,
    Send,
    crossdomain_xml,
    respond,
)
from plowline.collector.tracker_script import TrackerScript, load_tracker_script
from plowline.config import CollectorSettings
from plowline.errors import TransportError
from plowline.observability import get_logger, prometheus_exposition
from plowline.payload import CollectorPayload
from plowline.streams import Sink

log = get_logger("collector")

_TWO_SEGMENTS = re.compile(r"/([^/]+)/([^/]+)")
_PIXEL_PATHS = frozenset({"/i", "/ice.png"})
_ROUTE_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Route:
    """A tracking route: the path stored in the record and how to answer."""

    stored_path: str
    label: str
    pixel: bool
    redirect: bool


class CollectorApp:
    """ASGI app. Sinks are opened by the server's lifespan and handed in already open."""

    def __init__(
        self,
        settings: CollectorSettings,
        raw_sink: Sink,
        bad_sink: Sink,
        metrics: CollectorMetrics,
        collector_name: str,
    ) -> None:
        self.settings = settings
        self.raw_sink = raw_sink
        self.bad_sink = bad_sink
        self.metrics = metrics
        self.collector_name = collector_name
        self.processor = badrows.Processor("plowline-collector", __version__)
        self._crossdomain = crossdomain_xml(settings.cross_domain)
        self._script = load_tracker_script(settings.tracker_script)
        # Labelled children bound once: `labels()` per request showed up in profiles.
        self._stream_metrics = {
            stream: (metrics.sink_write_seconds.labels(stream), metrics.records_written.labels(stream))
            for stream in ("raw", "bad")
        }
        self._request_counters: dict[tuple[str, int], Any] = {}
        self._routes: dict[tuple[str, str], Route | None] = {}
        self._hsts = (
            (b"strict-transport-security", f"max-age={settings.hsts.max_age_s}".encode())
            if settings.hsts.enable
            else None
        )

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._hsts is not None:
            send = self._with_hsts(send)
        method: str = scope["method"]
        path: str = scope["path"]
        if method == "OPTIONS":
            await self._preflight(scope, send)
            return
        route = self._tracking_route(method, path)
        if route is not None:
            await self._track(scope, receive, send, route)
            return
        if self._script is not None and path == self.settings.tracker_script.path and method in ("GET", "HEAD"):
            await self._serve_script(self._script, scope, send)
            return
        await self._fixed(method, path, send)

    def _tracking_route(self, method: str, path: str) -> Route | None:
        try:
            return self._routes[method, path]
        except KeyError:
            route = self._route_for(method, path)
        if len(self._routes) < _ROUTE_CACHE_SIZE:  # paths come from clients: keep the cache bounded
            self._routes[method, path] = route
        return route

    def _route_for(self, method: str, path: str) -> Route | None:
        if method not in ("GET", "HEAD", "POST"):
            return None
        if path in _PIXEL_PATHS:
            return Route(path, "pixel", True, False) if method != "POST" else None
        if _TWO_SEGMENTS.fullmatch(path) is None:
            return None
        mapped = self.settings.paths.get(path)
        stored = mapped or path
        redirect = stored.startswith("/r/")
        if redirect and mapped is None and not self.settings.enable_default_redirect:
            return None
        label = "redirect" if redirect else ("tp2" if stored.endswith("/tp2") else "webhook")
        return Route(stored, label, method != "POST" and not redirect, redirect)

    async def _fixed(self, method: str, path: str, send: Send) -> None:
        """Everything that is not tracking: health, robots, metrics, root, crossdomain, 404."""
        readable = method in ("GET", "HEAD")
        if readable and path == "/health":
            await self._answer(send, "health", 200, [TEXT_PLAIN], b"ok")
        elif readable and path == "/sink-health":
            if self.raw_sink.healthy() and self.bad_sink.healthy():
                await self._answer(send, "sink-health", 200, [TEXT_PLAIN], b"ok")
            else:
                await self._answer(send, "sink-health", 503, [TEXT_PLAIN], b"Service Unavailable")
        elif readable and path == "/robots.txt":
            await self._answer(send, "robots", 200, [TEXT_PLAIN], ROBOTS_TXT)
        elif readable and path == "/metrics":
            body, content_type = prometheus_exposition()
            await respond(send, 200, [(b"content-type", content_type.encode())], body)
        elif path.startswith("/r/") and not self.settings.enable_default_redirect:
            await self._answer(send, "redirect", 404, [TEXT_PLAIN], b"redirects disabled")
        elif readable and path == "/" and self.settings.root_response.enabled:
            root = self.settings.root_response
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in root.headers.items()]
            await self._answer(send, "root", root.status_code, headers, root.body.encode())
        elif readable and path == "/crossdomain.xml" and self.settings.cross_domain.enabled:
            await self._answer(send, "crossdomain", 200, [(b"content-type", b"text/xml")], self._crossdomain)
        else:
            await self._answer(send, "other", 404, [TEXT_PLAIN], b"Not found")

    async def _serve_script(self, script: TrackerScript, scope: MutableMapping[str, Any], send: Send) -> None:
        """plowline.js, or a bodyless 304 when the browser's cached copy is current."""
        headers = dict(scope["headers"])
        if script.matches(headers.get(b"if-none-match")):
            await self._answer(send, "tracker-script", 304, script.headers(), b"")
        else:
            await self._answer(send, "tracker-script", 200, *script.encoded(headers.get(b"accept-encoding")))

    async def _answer(self, send: Send, route: str, status: int, headers: Headers, body: bytes) -> None:
        counter = self._request_counters.get((route, status))
        if counter is None:  # routes and statuses are few and fixed: bind each child once
            counter = self._request_counters[route, status] = self.metrics.requests.labels(route, str(status))
        counter.inc()
        await respond(send, status, headers, body)

    async def _preflight(self, scope: MutableMapping[str, Any], send: Send) -> None:
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        headers = _cors_headers(origin)
        headers.append((b"access-control-allow-headers", b"Content-Type, SP-Anonymous"))
        headers.append((b"access-control-max-age", str(self.settings.cors.access_control_max_age_s).encode()))
        await self._answer(send, "preflight", 200, headers, b"")

    async def _track(self, scope: MutableMapping[str, Any], receive: Receive, send: Send, route: Route) -> None:
        settings = self.settings
        networking = settings.networking
        request = read_request(scope)
        request_line = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + 16
        if request_line > networking.max_request_line_length or request.header_bytes > networking.max_headers_length:
            await self._answer(send, route.label, 400, [TEXT_PLAIN], b"Request line or headers too large")
            return
        body: str | None = None
        if request.method == "POST":
            try:
                raw_body = await read_body(receive, networking.drop_payload_size)
            except BodyTooLarge:
                await self._answer(send, route.label, 413, [TEXT_PLAIN], b"Payload Too Large")
                return
            # As Snowplow's collector: the body is text; undecodable bytes become U+FFFD.
            body = raw_body.decode("utf-8", errors="replace")

        now = time.time()
        nuid_param = None
        if "nuid=" in request.querystring:
            nuid_param = dict(parse_qsl(request.querystring)).get("nuid")
        identity = decide_identity(
            settings,
            parse_cookie_header(request.cookie_headers),
            nuid_param,
            request.querystring,
            request.anonymous,
            route.pixel,
            route.redirect,
        )
        headers = _cors_headers(request.origin)
        headers.extend((b"set-cookie", value) for value in set_cookie_headers(settings, identity, request.origin, now))

        if not identity.do_not_track and not identity.should_bounce:
            payload = CollectorPayload(
                ip_address=_client_ip(request),
                timestamp=int(now * 1000),
                encoding="UTF-8",
                collector=self.collector_name,
                user_agent=request.user_agent,
                referer_uri=request.referer,
                path=route.stored_path,
                querystring=request.querystring,
                body=body,
                headers=request.headers,
                content_type=request.content_type,
                hostname=_hostname(request.host),
                network_user_id=identity.network_user_id,
            )
            try:
                # asyncio.timeout runs the write in this task; wait_for would start a task per request.
                async with asyncio.timeout(networking.response_header_timeout_s):
                    await self._store(payload)
            except TimeoutError:
                await self._answer(send, route.label, 408, [TEXT_PLAIN], b"Request Timeout")
                return
            except TransportError:
                # Not durable, so not acknowledged: trackers retry on 503.
                await self._answer(send, route.label, 503, [TEXT_PLAIN], b"Service Unavailable")
                return

        if route.redirect:
            target = _redirect_target(request.querystring, settings.redirect_domains)
            if target is None:
                await self._answer(send, route.label, 400, headers, b"")
            else:
                headers.append((b"location", target.encode("utf-8")))
                await self._answer(send, route.label, 302, headers, b"")
        elif route.pixel and identity.should_bounce:
            headers.append((b"location", self._bounce_location(scope, request).encode("utf-8")))
            await self._answer(send, route.label, 302, headers, b"")
        elif route.pixel:
            headers.extend((NO_CACHE, IMAGE_GIF))
            await self._answer(send, route.label, 200, headers, PIXEL)
        else:
            headers.append(TEXT_PLAIN)
            await self._answer(send, route.label, 200, headers, b"ok")

    async def _store(self, payload: CollectorPayload) -> None:
        fitted = fit_to_sink(
            payload,
            payload.to_thrift(),
            self.raw_sink.max_record_bytes,
            self.settings.networking.max_payload_size,
            self.processor,
        )
        if not fitted.bad_rows:  # the usual case: one record, one sink, no gather
            await self._write("raw", self.raw_sink, fitted.records)
            return
        self.metrics.bad_rows.labels("size_violation").inc(len(fitted.bad_rows))
        writes = [self._write("bad", self.bad_sink, fitted.bad_rows)]
        if fitted.records:
            writes.append(self._write("raw", self.raw_sink, fitted.records))
        await asyncio.gather(*writes)

    async def _write(self, stream: str, sink: Sink, records: list[bytes]) -> None:
        started = time.perf_counter()
        try:
            await sink.write(records)
        except TransportError as exc:
            self.metrics.sink_failures.labels(stream).inc()
            log.error("sink write failed", stream=stream, records=len(records), error=str(exc))
            raise
        latency, written = self._stream_metrics[stream]
        latency.observe(time.perf_counter() - started)
        written.inc(len(records))

    def _bounce_location(self, scope: MutableMapping[str, Any], request: TrackingRequest) -> str:
        bounce = self.settings.cookie_bounce
        query = request.querystring
        query = f"{query}&{bounce.name}=true" if query else f"{bounce.name}=true"
        location = f"{request.path}?{query}"
        if bounce.forwarded_protocol_header and request.host:
            wanted = bounce.forwarded_protocol_header.lower().encode("latin-1")
            for name, value in scope["headers"]:
                if name == wanted and value in (b"http", b"https"):
                    return f"{value.decode()}://{request.host}{location}"
        return location

    def _with_hsts(self, send: Send) -> Send:
        hsts = self._hsts
        assert hsts is not None

        async def send_with_hsts(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), hsts]
            await send(message)

        return send_with_hsts


def _cors_headers(origin: str | None) -> Headers:
    first = origin.split()[0] if origin and origin.split() else None
    allow = b"*" if first is None or first == "null" else first.encode("latin-1", errors="replace")
    return [(b"access-control-allow-origin", allow), (b"access-control-allow-credentials", b"true")]


def _client_ip(request: TrackingRequest) -> str:
    if request.anonymous:
        return "unknown"
    if request.forwarded_for is not None:
        first = request.forwarded_for.split(",")[0].strip()
        if first:
            return first
    return request.peer_ip


def _hostname(host: str | None) -> str | None:
    if not host:
        return None
    try:
        return urlsplit("//" + host).hostname or host
    except ValueError:
        return host


def _redirect_target(querystring: str, allowed_hosts: list[str]) -> str | None:
    """The `u` target if it is an absolute http(s) URI on an allow-listed host; never an open redirect."""
    target = None
    for name, value in parse_qsl(querystring, keep_blank_values=True):
        if name == "u":
            target = value
    if not target:
        return None
    try:
        parts = urlsplit(target)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or host is None or host not in allowed_hosts:
        return None
    if any(ch in target for ch in "\r\n"):
        return None
    return target
