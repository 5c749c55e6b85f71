#!/usr/bin/env bash
# The one entry point for checks: lint, types, then each interpreter's suite, the cross-runtime tests
# included. Used by `make test`, CI and developers alike.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== ruff"
.venv-app/bin/ruff check . || status=1
echo "== mypy (strict on shared_schemas, queues, billing: pyproject.toml's [tool.mypy])"
.venv-app/bin/mypy || status=1
echo "== the pages' scripts parse"
for script in web/static/*.js; do node --check "$script" || status=1; done
echo "== Python 3.11 (worker side): shared contract, queues, billing, imports, voice worker"
# The Coqui and NeMo tests skip where their packages are absent: make sure they are not (`make run`
# builds the worker without the gpu extra; `make test` adds it).
.venv-worker/bin/python -c "from importlib.util import find_spec; exit(not (find_spec('TTS') and find_spec('nemo')))" ||
  { echo "The worker environment lacks the gpu extra (coqui-tts, nemo-toolkit): make test installs it"; status=1; }
.venv-worker/bin/python -m pytest tests/test_imports.py tests/shared_schemas tests/queues tests/billing tests/voice_worker "$@" || status=1
echo "== Python 3.13 (app side): shared contract, queues, billing, imports, council, app, and across the runtimes"
.venv-app/bin/python -m pytest tests/test_imports.py tests/test_internals.py tests/shared_schemas tests/queues tests/billing tests/council tests/integration tests/chaos tests/web tests/deploy "$@" || status=1
exit $status
