#!/usr/bin/env bash
# Refreshes the vendored hls.js (frontend/vendor/hls.js/) from the npm registry: the ES
# module build, its Web Worker (transmuxing off the page's main thread; loaded from our
# own origin, so the app's Content-Security-Policy needs no blob: workers) and the licence.
# The binary embeds frontend/, so the app loads it from its own server, never a CDN.
#   scripts/vendor-hls.sh            # the version pinned below
#   scripts/vendor-hls.sh 1.7.4      # another version (then update HLS_VERSION here)
set -euo pipefail
cd "$(dirname "$0")/.."

HLS_VERSION="${1:-1.7.4}"
dest="frontend/vendor/hls.js"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "hls.js@${HLS_VERSION}" >/dev/null)
tar -xzf "$work"/hls.js-*.tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/hls.min.mjs" "$dest/hls.min.mjs"
cp "$work/package/dist/hls.worker.js" "$dest/hls.worker.js"
cp "$work/package/LICENSE" "$dest/LICENSE"
# The source maps are not shipped: drop the comments that point browsers at them.
sed -i '/^\/\/# sourceMappingURL=/d' "$dest/hls.min.mjs" "$dest/hls.worker.js"
printf 'hls.js %s from the npm registry (package hls.js), files dist/hls.min.mjs, dist/hls.worker.js and LICENSE.\nRefresh with scripts/vendor-hls.sh.\n' "$HLS_VERSION" >"$dest/VERSION"
ls -l "$dest"
