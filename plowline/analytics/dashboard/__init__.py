"""The web dashboard and the Snowplow Micro compatible API, read-only over the DuckDB warehouse.

`create_dashboard_app(settings)` builds one Starlette app that serves `/dashboard` (the page and
its JSON API under `/dashboard/api/`) and, when `micro.enabled`, `/micro/*`. `plowline dashboard`
runs it alone; `plowline up` mounts it beside the collector on the collector's port (plowline/web.py).
"""

from plowline.analytics.dashboard.app import create_dashboard_app, is_loopback

__all__ = ["create_dashboard_app", "is_loopback"]
