#!/usr/bin/env bash
# The Debian/Ubuntu packages Council needs, installed when missing (as root).
#
#   scripts/system-deps.sh run    what `make run` needs: ffmpeg (decoding browser audio), espeak-ng
#                                 (a CPU voice), redis-server (when no Redis runs), libsndfile1
#   scripts/system-deps.sh test   those, and what only the tests use: flite (clean test speech),
#                                 chromium (the browser tests), docker-compose (validating
#                                 deploy/compose.yaml), nodejs (checking the pages' scripts parse),
#                                 stress-ng (a CPU hog beside the worker: the listener under load)
#
# Not root: prints the missing packages and the apt-get command that installs them. It fails (exit 1)
# only when something the chosen target needs is missing: `make run` goes on without the test tools.
set -euo pipefail
mode=${1:-run}
case "$mode" in run|test) ;; *) echo "usage: $0 run|test" >&2; exit 2 ;; esac

missing() {  # the Debian packages among "package:command" pairs whose command (or library) is absent
  local pair package probe
  for pair in "$@"; do
    package=${pair%%:*} probe=${pair#*:}
    if [[ $probe == lib:* ]]; then
      [[ $(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null) == installed ]] ||
        /sbin/ldconfig -p 2>/dev/null | grep -q "${probe#lib:}" || echo "$package"
    else
      command -v "$probe" >/dev/null || echo "$package"
    fi
  done
}

mapfile -t run_need < <(missing ffmpeg:ffmpeg espeak-ng:espeak-ng redis-server:redis-server libsndfile1:lib:libsndfile.so.1)
mapfile -t test_need < <(missing flite:flite chromium:chromium docker-compose:docker-compose nodejs:node stress-ng:stress-ng)
if [[ $mode == test ]]; then need=("${run_need[@]}" "${test_need[@]}"); else need=("${run_need[@]}"); fi

if [[ $(id -u) -eq 0 ]]; then
  ((${#need[@]})) || exit 0
  echo "Installing system packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  exit 0
fi

if ((${#run_need[@]})); then
  echo "Missing system packages that Council needs to run: ${run_need[*]}" >&2
  echo "Install them: sudo apt-get install -y ${run_need[*]}" >&2
fi
if ((${#test_need[@]})); then
  echo "Missing system packages that only the tests (make test) use: ${test_need[*]}" >&2
  echo "Install them: sudo apt-get install -y ${test_need[*]}" >&2
fi
((${#need[@]} == 0))
