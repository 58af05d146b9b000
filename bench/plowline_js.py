#!/usr/bin/env python3
"""Benchmark: plowline.js's size beside @snowplow/browser-tracker's, and the time each adds to page load.

Size: both built the same way with esbuild (the exact version pinned in tests/e2e/js/package.json):
`esbuild --minify` for plowline.js (already one dependency-free file) and `esbuild --bundle --minify --format=iife`
for `export * from '@snowplow/browser-tracker'` (the whole public API, as the UMD build exposes it), then
`gzip -9 -n` of each. The official UMD build as shipped on npm (`dist/index.umd.min.js`) is listed for reference.

Page load: headless Debian Chromium (tests/e2e/js/browser_driver.mjs) loads three versions of one static page from
a loopback server: without a tracker; with the loader snippet loading plowline.js from a real `plowline collector`
(gzip, ETag, Cache-Control) and tracking a page view; and with the official bundle loaded async from the page's
own server, tracking a page view. The figure is the navigation timing's loadEventEnd (ms from navigation start),
median of --runs loads per variant, variants interleaved; "cold" loads bust the script's cache with a query
parameter, "warm" ones reuse the cached script. Each run checks that the tracked page view reached the collector.

    .venv/bin/python bench/plowline_js.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from benchlib import machine_facts

REPO = Path(__file__).resolve().parents[1]
JS_DIR = REPO / "tests" / "e2e" / "js"
SCRIPT = REPO / "plowline" / "trackers" / "js" / "plowline.js"
SERVED = REPO / "plowline" / "trackers" / "js" / "plowline.min.js"  # what the collector serves
OFFICIAL_UMD = JS_DIR / "node_modules" / "@snowplow" / "browser-tracker" / "dist" / "index.umd.min.js"
ESBUILD = JS_DIR / "node_modules" / ".bin" / "esbuild"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

BODY = "<h1>Benchmark page</h1>" + "".join(f"<p>Paragraph {i} of a plain article page.</p>" for i in range(40))
PAGES = {
    "none": "",
    "plowline": """<script>
(function(w,d,s,u,n){w[n]=w[n]||function(){(w[n].q=w[n].q||[]).push(arguments)};
var e=d.createElement(s),f=d.getElementsByTagName(s)[0];e.async=1;e.src=u;
f.parentNode.insertBefore(e,f)})(window,document,'script','COLLECTOR/plowline.jsBUST','plowline');
plowline('newTracker', 'sp', 'COLLECTOR', { appId: 'bench' });
plowline('trackPageView');
</script>""",
    "snowplow": """<script async src="sp.jsBUST" onload="
snowplowBrowserTracking.newTracker('sp', 'COLLECTOR', { appId: 'bench', eventMethod: 'post' });
snowplowBrowserTracking.trackPageView();"></script>""",
}


def gzip9(data: bytes) -> int:
    return len(subprocess.run(["gzip", "-9", "-n", "-c"], input=data, capture_output=True, check=True).stdout)


def esbuild(args: list[str], stdin: bytes | None = None) -> bytes:
    result = subprocess.run([str(ESBUILD), *args], input=stdin, capture_output=True, cwd=JS_DIR, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"esbuild {args} failed: {result.stderr.decode()}")
    return result.stdout


def sizes() -> dict[str, dict[str, int]]:
    ours = esbuild([str(SCRIPT), "--minify", "--target=es2017"])
    theirs = esbuild(["--bundle", "--minify", "--format=iife", "--global-name=snowplowBrowserTracking",
                      "--target=es2017", "--loader=js"], stdin=b"export * from '@snowplow/browser-tracker';\n")
    official = OFFICIAL_UMD.read_bytes()
    source, served = SCRIPT.read_bytes(), SERVED.read_bytes()
    return {
        "plowline.js (source)": {"bytes": len(source), "gzip9": gzip9(source)},
        "plowline.js as served (plowline.min.js)": {"bytes": len(served), "gzip9": gzip9(served)},
        "plowline.js (esbuild --minify)": {"bytes": len(ours), "gzip9": gzip9(ours)},
        "@snowplow/browser-tracker (esbuild --bundle --minify)": {"bytes": len(theirs), "gzip9": gzip9(theirs)},
        "@snowplow/browser-tracker (npm dist/index.umd.min.js)": {"bytes": len(official), "gzip9": gzip9(official)},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """`plowline collector` in its own session on a free port and a temporary data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLOWLINE_")}
        env.update({"PLOWLINE_COLLECTOR__COOKIE__SECURE": "false", "PLOWLINE_COLLECTOR__COOKIE__SAME_SITE": "Lax"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plowline", "collector", "--data-dir", str(data_dir), "--port",
             self.url.rsplit(":", 1)[1], "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("collector did not become healthy")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


class Browser:
    """The e2e tests' step-by-step Chromium driver (one JSON command per line)."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            ["node", "browser_driver.mjs", str(profile), "30000"], cwd=JS_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.answers.put(line) for line in self.process.stdout or []], daemon=True).start()

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.answers.get(timeout=60))
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return answer["value"]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write('{"op": "close"}\n')
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def page_load(runs: int, work: Path) -> dict[str, dict[str, float]]:
    site = work / "site"
    site.mkdir()
    shutil.copy(OFFICIAL_UMD, site / "sp.js")
    collector = Collector(work / "collector")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    browser = Browser(work / "profile")
    timings: dict[str, list[float]] = {f"{name} {mode}": [] for name in PAGES for mode in ("cold", "warm")}
    try:
        for run in range(runs + 1):  # run 0 warms the browser, the servers and the caches; it is not counted
            for mode in ("cold", "warm"):
                for name, snippet in PAGES.items():
                    bust = f"?v={run}" if mode == "cold" else ""
                    html = f"<!doctype html><html><head><meta charset='utf-8'><title>bench {name}</title>"
                    html += snippet.replace("COLLECTOR", collector.url).replace("BUST", bust) + f"</head><body>{BODY}</body></html>"
                    (site / f"{name}-{mode}-{run}.html").write_text(html)
                    browser("goto", url=f"{base}/{name}-{mode}-{run}.html")
                    load_end = browser("wait", expr="performance.getEntriesByType('navigation')[0].loadEventEnd || false")
                    if name != "none":  # the page view must have been sent, or the figure means nothing
                        browser("wait", expr="performance.getEntriesByType('resource').some((r) => r.name.endsWith('/tp2'))")
                    if run > 0:
                        timings[f"{name} {mode}"].append(float(load_end))
    finally:
        browser.close()
        server.shutdown()
        collector.stop()
    figures = {key: {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1),
                     "max_ms": round(max(values), 1)} for key, values in timings.items()}
    # The same run's loads were back to back, so their difference cancels most of the machine's drift.
    for mode in ("cold", "warm"):
        for name in ("plowline", "snowplow"):
            paired = [tracked - bare for tracked, bare in zip(timings[f"{name} {mode}"], timings[f"none {mode}"], strict=True)]
            figures[f"{name} {mode}"]["added_median_ms"] = round(statistics.median(paired), 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="page loads per variant and mode (median reported)")
    args = parser.parse_args()
    facts = machine_facts()
    size = sizes()
    print("size (bytes)                                              raw     gzip -9")
    for name, figures in size.items():
        print(f"  {name:<54} {figures['bytes']:>7}  {figures['gzip9']:>7}")
    with tempfile.TemporaryDirectory(prefix="plowline-bench-js-") as work:
        load = page_load(args.runs, Path(work))
    print(f"page load, loadEventEnd ms, median of {args.runs} (min-max)")
    for key, figures in load.items():
        print(f"  {key:<16} {figures['median_ms']:>7.1f}  ({figures['min_ms']}-{figures['max_ms']})")
    print("time added to load (median of per-run differences with the page without a tracker)")
    for mode in ("cold", "warm"):
        print(f"  {mode}: plowline.js {load[f'plowline {mode}']['added_median_ms']:+.1f} ms, "
              f"@snowplow/browser-tracker {load[f'snowplow {mode}']['added_median_ms']:+.1f} ms")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"plowline_js-{stamp}.json").write_text(json.dumps(
        {"machine": facts, "runs": args.runs, "size": size, "page_load": load}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
