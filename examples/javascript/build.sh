#!/usr/bin/env bash
# Builds backend.js into a WebAssembly component: plugin.wasm (or $1).
# Needs Node.js 20+ and npm; installs the pinned ComponentizeJS from npm
# (package-lock.json) into node_modules/ on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/plugin.wasm}")"
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node build.mjs "$out"
