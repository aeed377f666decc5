#!/usr/bin/env bash
# yt-dlp.ex's default proxy manager, as a driver (issue 15): round robin
# over the enabled proxies; every failed run counts against its proxy,
# whatever the error; a proxy is disabled at its 3rd failure and never comes
# back; one attempt per URL; with no proxy enabled a URL fails without a run
# (`{:error, :no_proxies}`). Same yt-dlp options as shell_loop.sh.
# usage: ex_manager.sh URLS_FILE PROXIES_FILE OUT_DIR DISABLED_FILE
set -u
mapfile -t urls < "$1"
mapfile -t proxies < "$2"
out=$3
disabled=$4
: > "$disabled"
fails=()
for i in "${!proxies[@]}"; do fails[i]=0; done
index=0
for url in "${urls[@]}"; do
  enabled=()
  for i in "${!proxies[@]}"; do
    if (( fails[i] < 3 )); then enabled+=("$i"); fi
  done
  if (( ${#enabled[@]} == 0 )); then continue; fi
  i=${enabled[index % ${#enabled[@]}]}
  index=$((index + 1))
  if ! yt-dlp --socket-timeout 2 --proxy "${proxies[i]}" -o "$out/%(id)s.%(ext)s" "$url" >/dev/null 2>&1; then
    fails[i]=$((fails[i] + 1))
    if (( fails[i] == 3 )); then echo "${proxies[i]}" >> "$disabled"; fi
  fi
done
