#!/usr/bin/env bash
# Builds the example plugin into ./plugin.wasm.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --release --target wasm32-wasip2
cp target/wasm32-wasip2/release/example_route_by_site.wasm plugin.wasm
ls -l plugin.wasm
