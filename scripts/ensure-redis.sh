#!/usr/bin/env bash
# Make sure a Redis answers at COUNCIL_REDIS_URL's host and port (default 127.0.0.1:6379);
# start a local redis-server there when none does.
set -euo pipefail
url=${COUNCIL_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [[ $port == "$host" ]] && port=6379
if redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then exit 0; fi
if [[ $host != 127.0.0.1 && $host != localhost ]]; then
  echo "No Redis answers at $host:$port. Start it, or set COUNCIL_REDIS_URL." >&2; exit 1
fi
command -v redis-server >/dev/null || { echo "No Redis at $host:$port and redis-server is not installed." >&2; exit 1; }
dir=${TMPDIR:-/tmp}/council-redis-$port; mkdir -p "$dir"
echo "Starting redis-server on $host:$port (data in $dir)"
# A memory cap that never evicts: a full Redis refuses writes (the app answers 503 storage_full,
# nothing half-stored) rather than silently dropping queued jobs or conversations.
redis-server --daemonize yes --bind "$host" --port "$port" --dir "$dir" --appendonly yes \
  --maxmemory "${COUNCIL_REDIS_MAXMEMORY:-1gb}" --maxmemory-policy noeviction --logfile "$dir/redis.log"
for _ in $(seq 50); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "redis-server did not start; see $dir/redis.log" >&2; exit 1
