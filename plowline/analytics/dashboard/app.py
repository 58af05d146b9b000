"""The dashboard's Starlette app: the page, its JSON API under /dashboard/api/, and the Micro API.

Routes (all read-only; the warehouse is only ever sent SELECTs):

    GET /dashboard                       the page (static HTML + JS + CSS from package data)
    GET /dashboard/api/config            refresh interval, whether Micro is on
    GET /dashboard/api/summary           totals over ?from=&to= (ISO 8601, UTC)
    GET /dashboard/api/timeseries        events, page views, users, bad rows per minute/hour/day
    GET /dashboard/api/top/<dimension>   pages, referrers, campaigns, devices, browsers, countries, …
    GET /dashboard/api/events            the feed: ?status=all|good|bad&event=&app=&schema=&limit=&offset=
    GET /dashboard/api/events/<id>       one good event: its Analytics SDK JSON
    GET /dashboard/api/bad/<row_hash>    one bad row, with its failure messages
    GET /dashboard/api/options           values for the feed's filters
    GET /dashboard/api/derived           tables of the `derived` schema (the SQL models), if any
    /micro/all, /micro/good, /micro/bad, /micro/reset   when micro.enabled (see micro.py)
    /micro/events, /micro/timeline, /micro/columns, /micro/columnStats   likewise (see micro_paged.py)
    GET /micro/iglu/<vendor>/<name>/jsonschema/<m-r-a>   likewise: the schema as enrich's resolver finds it
    GET /micro/ui, /micro/ui/...         likewise: a redirect to the dashboard, Plowline's UI for the same data

Access: when a token is configured (dashboard.token, PLOWLINE_DASHBOARD__TOKEN) every route asks
for it, as `Authorization: Bearer <token>`, or as a cookie that opening `/dashboard?token=<token>`
once sets (HttpOnly, SameSite=Strict). Listening beyond loopback without a token is refused at
start (`ConfigError`), so the data is never served to the network unprotected.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from plowline import __version__
from plowline.analytics.dashboard import micro_paged as paged
from plowline.analytics.dashboard import warehouse as wh
from plowline.analytics.dashboard.micro import MicroStore
from plowline.analytics.query import NoWarehouse, QueryError
from plowline.config import Settings
from plowline.errors import ConfigError
from plowline.iglu.errors import RepositoryUnavailable, ResolutionError
from plowline.iglu.resolver import Resolver
from plowline.schema_key import InvalidSchemaKey, SchemaKey

__all__ = ["TOKEN_COOKIE", "create_dashboard_app", "is_loopback"]

TOKEN_COOKIE = "plowline_dashboard"
_STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_MICRO_ENDPOINTS = (
    "/micro/all, /micro/good, /micro/bad, /micro/reset, /micro/events, /micro/timeline, /micro/columns, "
    "/micro/columnStats, /micro/iglu, /micro/ui"
)
_IGLU_PATH = "Schema lookup should be in format iglu/{vendor}/{schemaName}/jsonschema/{model}-{revision}-{addition}"
_MAX_LIMIT = 500
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class JSONResponse(Response):
    """orjson, timestamps as UTC ISO 8601 with Z, decimals as numbers."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


class _TokenGuard:
    """Refuses requests without the token (when one is configured); turns ?token= into a cookie."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        offered = request.query_params.get("token")
        if offered is not None and self._matches(offered):
            # Trade the token in the URL for a cookie at once, so it does not stay in history or logs.
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token.decode(), httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
            await response(scope, receive, send)
            return
        authorization = request.headers.get("authorization", "")
        bearer = authorization[7:] if authorization[:7].lower() == "bearer " else None
        if (bearer is not None and self._matches(bearer)) or self._matches(request.cookies.get(TOKEN_COOKIE)):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse({"error": "a token is required: Authorization: Bearer <token>, or open "
                                         "/dashboard?token=<token> once"}, status_code=401,
                               headers={"WWW-Authenticate": "Bearer"})
        await refusal(scope, receive, send)

    def _matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.token)


class _Dashboard:
    """Route handlers over one warehouse runner."""

    def __init__(self, settings: Settings, run: wh.Runner) -> None:
        self.settings = settings
        self.run = run
        self.micro = MicroStore(settings, run)
        # The resolver enrich builds from the same settings, so /micro/iglu answers what enrich would see.
        self.resolver = (Resolver.configured(settings.enrich.resolver, extra_local_dirs=list(settings.enrich.iglu))
                         if settings.micro.enabled else None)
        package = resources.files("plowline.analytics.dashboard") / "static"
        self.page = (package / "index.html").read_bytes()
        self.static = {name: (package / name).read_bytes() for name in _STATIC}

    async def _answer(self, work: Callable[[], T]) -> T | Response:
        try:
            return await anyio.to_thread.run_sync(work)
        except QueryError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except ValueError as exc:  # a filter value SQL cannot hold (sql_string)
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def _json(self, work: Callable[[], Any]) -> Response:
        result = await self._answer(work)
        if isinstance(result, Response):
            return result
        if result is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    # --- the page ---

    async def index(self, request: Request) -> Response:
        if request.url.path == "/dashboard":  # relative asset URLs need the trailing slash
            return RedirectResponse("/dashboard/" + (f"?{request.url.query}" if request.url.query else ""), 308)
        return Response(self.page, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return PlainTextResponse("not found", status_code=404)
        return Response(self.static[name], media_type=_STATIC[name], headers=_SECURITY_HEADERS)

    # --- the JSON API ---

    async def config(self, request: Request) -> Response:
        return JSONResponse({"refresh_s": self.settings.dashboard.refresh_s, "micro": self.settings.micro.enabled,
                             "version": __version__, "now": datetime.now(UTC)})

    async def summary(self, request: Request) -> Response:
        span = _span(request)
        return await self._json(lambda: wh.summary(self.run, span))

    async def timeseries(self, request: Request) -> Response:
        span = _span(request)
        return await self._json(lambda: wh.timeseries(self.run, span))

    async def top(self, request: Request) -> Response:
        name = request.path_params["dimension"]
        if name not in wh.DIMENSIONS:
            return JSONResponse({"error": f"unknown dimension {name!r}; known: {', '.join(wh.DIMENSIONS)}"}, 404)
        span, limit = _span(request), _int(request, "limit", 10, 1, 100)
        return await self._json(lambda: wh.top(self.run, name, span, limit))

    async def events(self, request: Request) -> Response:
        params = request.query_params
        status = params.get("status") or "all"
        if status not in ("all", "good", "bad"):
            raise _BadRequest("status must be all, good or bad")
        filters = wh.FeedFilters(status, params.get("event", ""), params.get("app", ""),  # type: ignore[arg-type]
                                 params.get("schema", ""), _span(request))
        limit, offset = _int(request, "limit", 50, 1, _MAX_LIMIT), _int(request, "offset", 0, 0, 10_000_000)
        return await self._json(lambda: wh.events_feed(self.run, filters, limit, offset))

    async def event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        return await self._json(lambda: wh.event_detail(self.run, event_id))

    async def bad(self, request: Request) -> Response:
        row_hash = request.path_params["row_hash"]
        return await self._json(lambda: wh.bad_detail(self.run, row_hash))

    async def options(self, request: Request) -> Response:
        return await self._json(lambda: wh.filter_options(self.run))

    async def derived(self, request: Request) -> Response:
        return await self._json(lambda: wh.derived_tables(self.run))

    # --- Micro ---

    async def _micro_json(self, work: Callable[[], Any], nothing_yet: Any) -> Response:
        """Micro answers from the start, as Snowplow Micro does: before the loader has created the
        warehouse (just after `plowline up` starts) there is nothing yet, which is not an error."""

        def answer() -> Any:
            try:
                return work()
            except NoWarehouse:
                return nothing_yet

        return await self._json(answer)

    async def micro_all(self, request: Request) -> Response:
        return await self._micro_json(self.micro.counts, {"total": 0, "good": 0, "bad": 0})

    async def micro_good(self, request: Request) -> Response:
        filters = await _micro_filters(request, {"event_type": str, "schema": str, "contexts": list, "limit": int})
        contexts = filters.get("contexts")
        if contexts is not None and not all(isinstance(uri, str) for uri in contexts):
            raise _BadRequest("contexts must be a list of schema URIs")
        return await self._micro_json(lambda: self.micro.good(filters.get("event_type"), filters.get("schema"),
                                                              contexts, filters.get("limit")), [])

    async def micro_bad(self, request: Request) -> Response:
        filters = await _micro_filters(request, {"vendor": str, "version": str, "limit": int})
        return await self._micro_json(lambda: self.micro.bad(filters.get("vendor"), filters.get("version"),
                                                             filters.get("limit")), [])

    async def micro_events(self, request: Request) -> Response:
        query = await _micro_request(request, paged.EventsQuery.from_json)
        return await self._micro_json(lambda: paged.events_page(self.run, self.micro.since(), query),
                                      {"events": [], "totalPages": 1, "totalItems": 0})

    async def micro_timeline(self, request: Request) -> Response:
        buckets = await _micro_request(request, paged.parse_buckets)
        return await self._micro_json(lambda: paged.timeline(self.run, self.micro.since(), buckets),
                                      paged.timeline(None, self.micro.since(), buckets))

    async def micro_columns(self, request: Request) -> Response:
        return await self._micro_json(lambda: paged.columns(self.run, self.micro.since()), [])

    async def micro_column_stats(self, request: Request) -> Response:
        names = await _micro_request(request, paged.parse_stats_columns)
        return await self._micro_json(lambda: paged.column_stats(self.run, self.micro.since(), names),
                                      paged.column_stats(None, self.micro.since(), names))

    async def micro_reset(self, request: Request) -> Response:
        await anyio.to_thread.run_sync(self.micro.reset)
        return PlainTextResponse("Reset completed")

    async def micro_iglu(self, request: Request) -> Response:
        """Micro's schema check: the schema (200), or 404 with the lookup history of every repository asked."""
        params = request.path_params
        try:
            key = SchemaKey.parse(f"iglu:{params['vendor']}/{params['name']}/jsonschema/{params['version']}")
        except InvalidSchemaKey:
            return PlainTextResponse(_IGLU_PATH, status_code=404)
        resolver = self.resolver
        assert resolver is not None  # the route exists only when Micro is enabled
        try:
            schema = await anyio.to_thread.run_sync(resolver.lookup, key)
        except ResolutionError as exc:
            history = {entry["repository"]: {k: v for k, v in entry.items() if k != "repository"}
                       for entry in exc.lookup_history}
            return JSONResponse({"value": history}, status_code=404)
        except RepositoryUnavailable as exc:  # transient: worth asking again, unlike a 404
            return JSONResponse({"error": "RepositoryUnavailable", "message": str(exc)}, status_code=503)
        return JSONResponse(schema, headers={"Cache-Control": "no-store"})

    async def micro_iglu_other(self, request: Request) -> Response:
        return PlainTextResponse(_IGLU_PATH, status_code=404)

    async def micro_ui(self, request: Request) -> Response:
        # Micro's UI lives at /micro/ui; bookmarks and docs that point there land on the dashboard.
        return RedirectResponse("/dashboard/", status_code=307)

    async def micro_other(self, request: Request) -> Response:
        return PlainTextResponse(f"Supported endpoints: {_MICRO_ENDPOINTS}", status_code=404)


class _BadRequest(ValueError):
    """A query parameter or filter that makes no sense: 400."""


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


def _span(request: Request) -> wh.TimeRange:
    try:
        start, end = wh.parse_time(request.query_params.get("from")), wh.parse_time(request.query_params.get("to"))
    except ValueError as exc:
        raise _BadRequest(f"from/to must be ISO 8601 times: {exc}") from None
    if start is not None and end is not None and end <= start:
        end = start + timedelta(seconds=1)
    return wh.TimeRange(start, end)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    return max(low, min(high, value))


async def _body_json(request: Request) -> Any:
    """The request body's JSON; None for an empty body."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"the body must be JSON: {exc}") from None


async def _micro_request(request: Request, parse: Callable[[Any], T]) -> T:
    """A Micro POST body parsed by `parse` (a ValueError from it is a 400 saying what is wrong)."""
    body = await _body_json(request)
    try:
        return parse({} if body is None else body)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None


async def _micro_filters(request: Request, allowed: dict[str, type]) -> dict[str, Any]:
    """A POST body's filters (GET, or an empty body: none), each of its documented type."""
    filters = await _body_json(request) if request.method == "POST" else None
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise _BadRequest("the body must be a JSON object of filters")
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key not in allowed or value is None:
            continue  # Micro ignores what it does not know
        kind = allowed[key]
        if not isinstance(value, kind) or (isinstance(value, int) and (isinstance(value, bool) or value < 0)):
            raise _BadRequest(f"{key} must be a {'non-negative integer' if kind is int else kind.__name__}")
        out[key] = value
    return out


def create_dashboard_app(settings: Settings, *, host: str, run: wh.Runner | None = None) -> ASGIApp:
    """The dashboard (and Micro API, when enabled) for the warehouse of `settings`, served on `host`.

    Raises ConfigError when `host` is not loopback and no dashboard.token is set.
    """
    token = settings.dashboard.token
    if not token and not is_loopback(host):
        raise ConfigError(
            "dashboard.token",
            f"the dashboard would listen on {host}, beyond this machine, without a token",
            "set dashboard.token (or PLOWLINE_DASHBOARD__TOKEN), or listen on 127.0.0.1",
        )
    handlers = _Dashboard(settings, run or wh.warehouse_runner(settings))
    routes = [
        Route("/dashboard", handlers.index, methods=["GET"]),
        Route("/dashboard/", handlers.index, methods=["GET"]),
        Route("/dashboard/static/{name}", handlers.asset, methods=["GET"]),
        Route("/dashboard/api/config", handlers.config, methods=["GET"]),
        Route("/dashboard/api/summary", handlers.summary, methods=["GET"]),
        Route("/dashboard/api/timeseries", handlers.timeseries, methods=["GET"]),
        Route("/dashboard/api/top/{dimension}", handlers.top, methods=["GET"]),
        Route("/dashboard/api/events", handlers.events, methods=["GET"]),
        Route("/dashboard/api/events/{event_id}", handlers.event, methods=["GET"]),
        Route("/dashboard/api/bad/{row_hash}", handlers.bad, methods=["GET"]),
        Route("/dashboard/api/options", handlers.options, methods=["GET"]),
        Route("/dashboard/api/derived", handlers.derived, methods=["GET"]),
    ]
    if settings.micro.enabled:
        routes += [
            Route("/micro/all", handlers.micro_all, methods=["GET", "POST"]),
            Route("/micro/good", handlers.micro_good, methods=["GET", "POST"]),
            Route("/micro/bad", handlers.micro_bad, methods=["GET", "POST"]),
            Route("/micro/reset", handlers.micro_reset, methods=["GET", "POST"]),
            Route("/micro/events", handlers.micro_events, methods=["POST"]),
            Route("/micro/timeline", handlers.micro_timeline, methods=["POST"]),
            Route("/micro/columns", handlers.micro_columns, methods=["GET"]),
            Route("/micro/columnStats", handlers.micro_column_stats, methods=["POST"]),
            Route("/micro/iglu/{vendor}/{name}/jsonschema/{version}", handlers.micro_iglu, methods=["GET"]),
            Route("/micro/iglu/{rest:path}", handlers.micro_iglu_other, methods=["GET"]),
            Route("/micro/ui", handlers.micro_ui, methods=["GET"]),
            Route("/micro/ui/{rest:path}", handlers.micro_ui, methods=["GET"]),
            Route("/micro/{rest:path}", handlers.micro_other, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
        exception_handlers={_BadRequest: _bad_request},
    )
    return _TokenGuard(app, token)
