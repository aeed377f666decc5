#!/usr/bin/env bash
# The guide's code is the tested code: builds every "first plugin in five
# minutes" of docs/writing-a-plugin.md from the guide's own text.
#
# In the guide, a fenced block whose info string says
#   file=DIR/NAME   is a file of the project DIR (written to WORK/DIR/NAME);
#   run=DIR out=F   is a build step, run with bash in WORK/DIR after every
#                   file is written; it must produce the component WORK/DIR/F.
# The projects sit beside a checkout named `ytdlp-host` (WORK/ytdlp-host is
# this repository), as the guide tells a reader to lay them out. The steps
# that install tools (venv, npm, apt, cargo install) are not run: the tools
# come from the examples' own builds (examples/*/build.sh, run before this
# by .ci/run), and the versions the guide pins are checked against theirs.
#
# Each component is validated with wasm-tools, must export
# ytdlp:proxy/backend@0.2.0 and ytdlp:proxy/stats@0.2.0, and is copied to
# target/guide/DIR.wasm, where tests/all/guide.rs runs the conformance kit
# on it (.ci/run exports YTDLP_HOST_GUIDE_<DIR> for it).
#
# The Rust section is written for the 0.2 SDK (plugins/sdk); while the SDK
# still speaks 0.1 it is skipped with a notice.
#
# Usage: docs/guide-check.sh [GUIDE.md]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
guide="$(realpath "${1:-$repo/docs/writing-a-plugin.md}")"
out="$repo/target/guide"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "guide-check: $*" >&2; exit 1; }

wasm_tools="$repo/examples/c/.venv/bin/wasm-tools"
[ -x "$wasm_tools" ] || fail "wasm-tools is missing: run examples/c/build.sh first (it installs it)"

# 1. The blocks, in order: files written, build steps numbered.
mkdir -p "$work/.steps"
awk -v work="$work" '
  function attr(name,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return substr($i, length(name) + 2) }
    return ""
  }
  /^```/ {
    if (inblock) { inblock = 0; if (target != "") close(target); target = ""; next }
    inblock = 1
    file = attr("file"); run = attr("run")
    if (file != "") {
      if (file ~ /(^\/|\.\.)/) { print "guide-check: bad file=" file > "/dev/stderr"; exit 2 }
      dir = file; sub(/\/[^\/]*$/, "", dir)
      system("mkdir -p \"" work "/" dir "\"")
      target = work "/" file
      printf "" > target
    } else if (run != "") {
      steps++
      o = attr("out")
      if (o == "") { print "guide-check: run=" run " has no out=" > "/dev/stderr"; exit 2 }
      printf "%s %s\n", run, o > (work "/.steps/" sprintf("%02d", steps) ".meta")
      close(work "/.steps/" sprintf("%02d", steps) ".meta")
      target = work "/.steps/" sprintf("%02d", steps) ".sh"
      printf "" > target
    }
    next
  }
  target != "" { print > target }
' "$guide"
compgen -G "$work/.steps/*.sh" >/dev/null || fail "no run= blocks in $guide"

# 2. The versions the guide pins are the examples' pins.
pin() { grep -o "$1" "$2" | head -n1 | grep -o '[0-9][0-9.]*$' || true; }
check_pin() { # what, pattern in the guide, pattern in the example's file
  local g e
  g="$(pin "$2" "$guide")"
  e="$(pin "$3" "$4")"
  [ -n "$g" ] || fail "the guide does not pin $1"
  [ "$g" = "$e" ] || fail "the guide pins $1 $g, $4 pins $e"
}
check_pin componentize-py 'componentize-py==[0-9.]*' 'componentize-py==[0-9.]*' "$repo/examples/python/requirements.txt"
check_pin componentize-js '@bytecodealliance/componentize-js@[0-9.]*' \
  '"@bytecodealliance/componentize-js": "[0-9.]*' "$repo/examples/javascript/package.json"
check_pin wit-bindgen-cli 'wit-bindgen-cli@[0-9.]*' 'WIT_BINDGEN_VERSION=[0-9.]*' "$repo/examples/c/build.sh"

# 3. The layout and the tools.
ln -s "$repo" "$work/ytdlp-host"
for dir in "$work"/*/; do
  dir="$(basename "$dir")"
  case "$dir" in
    ytdlp-host) ;;
    python) ln -s "$repo/examples/python/.venv" "$work/python/.venv" ;;
    javascript) ln -s "$repo/examples/javascript/node_modules" "$work/javascript/node_modules" ;;
    c)
      adapter="$repo/examples/c/build/wasi_snapshot_preview1.reactor.wasm"
      [ -s "$adapter" ] || fail "$adapter is missing: run examples/c/build.sh first"
      cp "$adapter" "$work/c/" ;;
    rust)
      # Builds are kept between runs; the pinned toolchain, as in the repo.
      mkdir -p "$repo/target/guide-rust"
      ln -s "$repo/target/guide-rust" "$work/rust/target"
      # The workspace's lock pins the versions the SDK was tested with (a
      # reader's fresh crate would resolve anew; CI should not drift).
      cp "$repo/Cargo.lock" "$work/rust/Cargo.lock" ;;
    *) fail "no toolchain set up for the guide's project \`$dir\`" ;;
  esac
done
for bin in "$repo/examples/python/.venv/bin/componentize-py" \
  "$repo/examples/javascript/node_modules/@bytecodealliance/componentize-js/package.json"; do
  [ -e "$bin" ] || fail "$bin is missing: run the examples' build.sh first"
done
export PATH="$repo/examples/c/.venv/bin:$PATH"
export RUSTUP_TOOLCHAIN
RUSTUP_TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$repo/rust-toolchain.toml")"

# 4. Build, validate, keep.
mkdir -p "$out"
built=0
for meta in "$work"/.steps/*.meta; do
  read -r dir file <"$meta"
  step="${meta%.meta}.sh"
  t=$(date +%s%N)
  (cd "$work/$dir" && bash -euo pipefail "$step") >"$work/$dir.log" 2>&1 ||
    { cat "$work/$dir.log" >&2; fail "$dir: the guide's build step failed (above)"; }
  wasm="$work/$dir/$file"
  [ -s "$wasm" ] || fail "$dir: the build step did not produce $file"
  "$wasm_tools" validate --features component-model "$wasm" || fail "$dir: $file is not a valid component"
  wit="$("$wasm_tools" component wit "$wasm")"
  for iface in backend stats; do
    grep -q "^ *export ytdlp:proxy/$iface@0.2.0;" <<<"$wit" ||
      fail "$dir: $file does not export ytdlp:proxy/$iface@0.2.0; it has: $(grep -E '^ *export' <<<"$wit" | tr -s ' \n' ' ')"
  done
  cp "$wasm" "$out/$dir.wasm"
  ms=$(( ($(date +%s%N) - t) / 1000000 ))
  printf '  %s: %s, %s bytes, exports backend+stats@0.2.0, built from the guide in %d.%03d s\n' \
    "$dir" "$out/$dir.wasm" "$(stat -c %s "$wasm")" $((ms / 1000)) $((ms % 1000))
  built=$((built + 1))
done
[ "$built" -gt 0 ] || fail "nothing was built"
