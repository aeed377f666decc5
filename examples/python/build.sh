#!/usr/bin/env bash
# Builds app.py into a WebAssembly component: plugin.wasm (or $1).
# Needs python3 (3.10+); installs the pinned componentize-py from PyPI into
# .venv/ on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/plugin.wasm}")"
started=$(date +%s%N)
want="$(grep -o '^componentize-py==.*' "$here/requirements.txt" | sed 's/==/ /')"
if [ "$("$here/.venv/bin/componentize-py" --version 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
# componentize-py bundles every file of the directories on its path (-p),
# and running the module at build time writes its __pycache__ there, which
# the next build would bundle too: give it a fresh directory holding only
# the module, outside the source tree.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp "$here/app.py" "$src/"
# The world with stats: backend + stats. The WIT is the repository's.
"$here/.venv/bin/componentize-py" -d "$here/../../wit/proxy-0.2.wit" -w proxy-backend-with-stats \
  componentize -p "$src" app -o "$out" >/dev/null
ms=$(( ($(date +%s%N) - started) / 1000000 ))
printf '%s: %s bytes, built in %d.%03d s\n' "$out" "$(stat -c %s "$out")" $((ms / 1000)) $((ms % 1000))
