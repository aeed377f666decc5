#!/usr/bin/env bash
# The loop people write (issue 15): each URL, up to 3 tries, each through a
# random proxy of the list. `--socket-timeout 2` as the issue measured it
# (yt-dlp's default of 20 s would make each black hole cost about a minute).
# usage: shell_loop.sh URLS_FILE PROXIES_FILE OUT_DIR SEED
set -u
mapfile -t urls < "$1"
mapfile -t proxies < "$2"
out=$3
RANDOM=$4 # reproducible picks for a seed
for url in "${urls[@]}"; do
  for _ in 1 2 3; do
    proxy=${proxies[RANDOM % ${#proxies[@]}]}
    if yt-dlp --socket-timeout 2 --proxy "$proxy" -o "$out/%(id)s.%(ext)s" "$url" >/dev/null 2>&1; then
      break
    fi
  done
done
