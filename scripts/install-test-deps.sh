#!/usr/bin/env bash
# Installs what the real-tracker tests (tests/e2e) need beyond the Python venv, idempotently:
#   - Debian's chromium (the browser-tracker test runs it headless), only if it is missing;
#   - the pinned npm packages in tests/e2e/js (`npm ci`), only if node_modules is missing or older
#     than package-lock.json.
# Needs root for apt-get (as on CI and the dev machines), Node.js >= 20 and npm on PATH.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_dir="$repo/tests/e2e/js"
chromium="${PLOWLINE_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: $chromium is missing; install Debian's chromium package (apt-get needs root)" >&2
        exit 1
    fi
    echo "install-test-deps: installing chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
fi

command -v node >/dev/null || { echo "install-test-deps: node (>= 20) is not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-test-deps: npm is not on PATH" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || { echo "install-test-deps: Node.js >= 20 needed, found $(node --version)" >&2; exit 1; }

# npm ci writes node_modules/.package-lock.json last; compare it with the committed lock file.
marker="$js_dir/node_modules/.package-lock.json"
if [ ! -f "$marker" ] || [ "$js_dir/package-lock.json" -nt "$marker" ] || [ "$js_dir/package.json" -nt "$marker" ]; then
    echo "install-test-deps: npm ci in tests/e2e/js" >&2
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$marker"
fi
