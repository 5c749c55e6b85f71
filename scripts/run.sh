#!/usr/bin/env bash
# `make run`: a Redis (started if none answers), a voice worker (Python 3.11), a second one that
# serves only conversations (the speech and realtime queues: whatever batch files the first is on,
# a turn finds a worker free; REALTIME_WORKERS=0 starts none, 2 starts two), an LLM worker for the
# council's built-in model (WORKER_QUEUES=llm: synthesis never waits behind generation;
# LLM_WORKERS=0 starts none), and the app (Python 3.13) on http://127.0.0.1:8000. Ctrl-C stops them
# all, and the Redis it started (a Redis that was already running is left running, and it says so).
# Before starting anything it checks the settings (`python -m web --check`) and that nothing
# else listens on the app's port: each problem is one line saying what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
export COUNCIL_REDIS_URL=${COUNCIL_REDIS_URL:-redis://127.0.0.1:6379/0}
HOST=${COUNCIL_HOST:-127.0.0.1}
PORT=${COUNCIL_PORT:-8000}
REALTIME_WORKERS=${REALTIME_WORKERS:-1}
LLM_WORKERS=${LLM_WORKERS:-1}
# The app answers only the host names it knows (COUNCIL_ALLOWED_HOSTS): ask by a loopback one
# when it listens on every interface (which it does only with a token, or COUNCIL_ALLOW_OPEN=1).
case "$HOST" in 0.0.0.0|::|"[::]") LOCAL=127.0.0.1 ;; *) LOCAL=$HOST ;; esac

# Checked before anything starts: the settings, then the port.
.venv-app/bin/python -m web --check --host "$HOST" --port "$PORT" || exit 1
if (exec 3<>"/dev/tcp/$LOCAL/$PORT") 2>/dev/null; then
  echo "Port $PORT on $LOCAL is in use by another program (another Council?): stop it, or run on another port:" \
    "COUNCIL_PORT=$((PORT + 1)) make run" >&2
  exit 1
fi

hostport=${COUNCIL_REDIS_URL#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
REDIS_HOST=${hostport%%:*}; REDIS_PORT=${hostport##*:}; [[ $REDIS_PORT == "$REDIS_HOST" ]] && REDIS_PORT=6379
redis_was_up=0
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && redis_was_up=1
scripts/ensure-redis.sh

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((redis_was_up)); then
    echo "Redis at $REDIS_HOST:$REDIS_PORT was running before: left running."
  elif redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown >/dev/null 2>&1; then
    echo "Stopped the Redis started on $REDIS_HOST:$REDIS_PORT (its data is kept for the next make run)."
  fi
  echo "Stopped."
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

.venv-worker/bin/python -m voice_worker &
pids+=($!)
for _ in $(seq "$REALTIME_WORKERS"); do
  WORKER_QUEUES=speech,realtime .venv-worker/bin/python -m voice_worker &
  pids+=($!)
done
for _ in $(seq "$LLM_WORKERS"); do
  WORKER_QUEUES=llm .venv-worker/bin/python -m voice_worker &
  pids+=($!)
done
.venv-app/bin/python -m web --host "$HOST" --port "$PORT" &
pids+=($!)

# Up when /health answers; the LLM worker loads its model meanwhile (~20 s on a busy CPU): wait for
# it too (a minute at most), so that what is said below is true.
up=""
for _ in $(seq 600); do
  if health=$(curl -fsS "http://$LOCAL:$PORT/health" 2>/dev/null); then
    [[ -z $up ]] && up=$SECONDS
    if ! printf '%s' "$health" | grep -q '"status":"degraded"' || (( SECONDS - up > 60 )); then
      # No language model answers: say so here too, with what to do (the page and /health say it);
      # the small built-in model answers: say that too, and how to get real answers (a notice).
      # Worked out before anything is said: once the banner is out, a Ctrl-C lands on `wait`
      # below and its INT trap, never on a foreground command that would handle it itself.
      said=$(printf '%s' "$health" | .venv-app/bin/python -c \
        'import json, sys; h = json.load(sys.stdin); print(("WARNING: " + h.get("reason", "")) if h.get("status") == "degraded" else ("NOTE: " + h["notice"]) if h.get("notice") else "")')
      echo
      echo "Council is running: open http://$LOCAL:$PORT  (Ctrl-C to stop)"
      [[ -n $said ]] && echo "$said" >&2
      echo "From a terminal:    .venv-app/bin/python -m queues transcribe FILE.wav"
      break
    fi
  fi
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "A process exited; see above." >&2; exit 1; }; done
  sleep 0.2
done
wait -n "${pids[@]}"
