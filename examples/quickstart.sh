#!/usr/bin/env bash
# A first download with the bundled default plugin, entirely on this machine:
# a local media server, a real proxy (tinyproxy) and a dead one, and
# ytdlp-host rotating between them.
#
#   ./examples/quickstart.sh
#
# Needs Rust (the pinned toolchain) and python3. yt-dlp is found on PATH or
# installed by ytdlp-host into its private venv; tinyproxy is installed with
# apt-get when run as root, otherwise you are asked to install it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v rustup >/dev/null && rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
echo "== building ytdlp-host (release; the first build takes several minutes)"
cargo build --release --locked -p ytdlp-host
host=$PWD/target/release/ytdlp-host

if ! command -v tinyproxy >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing tinyproxy (apt-get)"
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy >/dev/null; }
    rm -f /usr/sbin/policy-rc.d
  else
    echo "tinyproxy is needed for this demo: sudo apt-get install tinyproxy" >&2
    exit 1
  fi
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

media=$(free_port); proxy=$(free_port); dead=$(free_port)
mkdir -p "$work/www" && cp tests/fixtures/clip.mp4 "$work/www/clip.mp4"
python3 -m http.server "$media" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 & pids+=($!)
printf 'Port %s\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Error\n' "$proxy" > "$work/tinyproxy.conf"
tinyproxy -d -c "$work/tinyproxy.conf" >/dev/null 2>&1 & pids+=($!)
wait_port "$media"; wait_port "$proxy"

echo "== ytdlp-host download (proxies: a dead one on :$dead, tinyproxy on :$proxy)"
mkdir -p downloads
"$host" download \
  --proxy "http://127.0.0.1:$dead" --proxy "http://127.0.0.1:$proxy" \
  -o "downloads/%(id)s.%(ext)s" -v \
  "http://127.0.0.1:$media/clip.mp4"
echo "== downloaded:"
ls -l downloads/clip.mp4
