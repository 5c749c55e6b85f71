# syntax=docker/dockerfile:1
# The web app and the council (Python 3.13). No torch, no speech engines: those live in the worker.
#
#   docker build -f app.Dockerfile -t council-app .
#   docker build -f app.Dockerfile --target dashboard -t council-dashboard .   # rq-dashboard, same rq
FROM python:3.13-slim AS app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared_schemas shared_schemas
COPY queues queues
COPY billing billing
COPY council council
COPY web web
# The project itself (DL3013: its pins live in pyproject.toml).
# hadolint ignore=DL3013
RUN pip install ".[app]" \
 && rm -rf /src/build \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin council
# Who sits on the council: mount your own file here (docker run -v ./members.toml:/etc/council/members.toml:ro).
COPY council/members.toml /etc/council/members.toml
USER 10001:10001
WORKDIR /home/council
EXPOSE 8000
ENV COUNCIL_PORT=8000 COUNCIL_MEMBERS_FILE=/etc/council/members.toml
# Alive when /health answers: 200, or 503 when no worker serves `realtime` (the worker's own check
# tells that one), or 401 when only per-user tokens (COUNCIL_API_TOKENS) protect the API.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.error, urllib.request\nport = os.environ.get('COUNCIL_PORT', '8000')\ntoken = os.environ.get('COUNCIL_API_TOKEN')\nrequest = urllib.request.Request(f'http://127.0.0.1:{port}/health', headers={'Authorization': f'Bearer {token}'} if token else {})\ntry:\n    urllib.request.urlopen(request, timeout=4)\nexcept urllib.error.HTTPError as exc:\n    sys.exit(0 if exc.code in (401, 503) else 1)\nexcept OSError:\n    sys.exit(1)"]
CMD ["python", "-m", "web", "--host", "0.0.0.0"]

# ---- rq-dashboard against the same rq release, run with --json (our jobs are JSON) ------------
FROM app AS dashboard
USER 0
RUN pip install "rq-dashboard==0.9.0" "six==1.17.0"
USER 10001:10001
EXPOSE 9181
HEALTHCHECK NONE
CMD ["rq-dashboard", "--json", "--port", "9181"]
