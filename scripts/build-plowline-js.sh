#!/usr/bin/env bash
# Builds plowline/trackers/js/plowline.min.js (or the file given as the argument), the plowline.js the
# collector serves, from the readable source beside it with the esbuild pinned in tests/e2e/js (run
# scripts/install-test-deps.sh first).
# The build is deterministic, and tests/trackers/test_plowline_js_build.py fails when the committed
# file is not what this script makes from the committed source: run it after editing plowline.js.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
esbuild="$repo/tests/e2e/js/node_modules/.bin/esbuild"
source="$repo/plowline/trackers/js/plowline.js"
out="${1:-$repo/plowline/trackers/js/plowline.min.js}"
[ -x "$esbuild" ] || { echo "build-plowline-js: $esbuild is missing; run scripts/install-test-deps.sh" >&2; exit 1; }

version="$(sed -n "s/^ *const VERSION = '\([0-9.]*\)';.*/\1/p" "$source")"
[ -n "$version" ] || { echo "build-plowline-js: no VERSION in $source" >&2; exit 1; }
banner="/*! plowline.js $version | Apache-2.0 | minified from plowline/trackers/js/plowline.js */"
"$esbuild" "$source" --minify --target=es2017 --legal-comments=none --log-level=warning \
    "--banner:js=$banner" --outfile="$out"
