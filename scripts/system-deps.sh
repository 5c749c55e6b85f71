#!/usr/bin/env bash
# Debian/Ubuntu packages Council needs: ffmpeg (decoding browser audio), espeak-ng (a CPU voice),
# flite (clean test speech), redis-server (when no Redis runs), chromium (the browser tests),
# docker-compose (validating deploy/compose.yaml), nodejs (checking the pages' scripts parse).
# Installs what is missing, as root.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v flite >/dev/null || need+=(flite)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v docker-compose >/dev/null || need+=(docker-compose)
dpkg -s libsndfile1 >/dev/null 2>&1 || need+=(libsndfile1)
((${#need[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "Missing system packages: ${need[*]}. Install them: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
