# Council: `make run` starts everything on this machine, `make test` runs every check.
SHELL := /bin/bash
PYENV_ROOT := $(shell pyenv root 2>/dev/null)
# An interpreter that runs (a pyenv shim may exist and fail), else pyenv's own build.
find_python = $(or $(shell $(1) -c 'import sys; print(sys.executable)' 2>/dev/null),$(lastword $(wildcard $(PYENV_ROOT)/versions/$(2)*/bin/$(1))))
PY313 ?= $(call find_python,python3.13,3.13)
PY311 ?= $(call find_python,python3.11,3.11)
APP_VENV := .venv-app
WORKER_VENV := .venv-worker
export PY313 PY311

.PHONY: all run test bench load lint dashboard system-deps venvs clean

all: venvs

system-deps:
	@scripts/system-deps.sh

$(APP_VENV)/.built: pyproject.toml
	@test -n "$(PY313)" || { echo "Python 3.13 not found: install it or set PY313=/path/to/python3.13"; exit 1; }
	$(PY313) -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install -q --upgrade pip
	$(APP_VENV)/bin/pip install -q -e '.[app,dev]'
	touch $@

$(WORKER_VENV)/.built: pyproject.toml
	@test -n "$(PY311)" || { echo "Python 3.11 not found: install it or set PY311=/path/to/python3.11"; exit 1; }
	$(PY311) -m venv $(WORKER_VENV)
	$(WORKER_VENV)/bin/pip install -q --upgrade pip
	$(WORKER_VENV)/bin/pip install -q -e '.[worker,dev]'
	@# coqui-tts will not import without torchaudio and torchcodec; PyPI's torchaudio is a CUDA
	@# build that fails beside CPU torch, so keep only its pure-Python parts (a CUDA image installs
	@# a matching torch/torchaudio pair instead: worker.Dockerfile).
	$(WORKER_VENV)/bin/pip install -q --no-deps torchaudio==2.11.0 torchcodec==0.12.0
	rm -f $$($(WORKER_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/torchaudio/lib/*.so
	touch $@

venvs: system-deps $(APP_VENV)/.built $(WORKER_VENV)/.built

run: venvs
	@scripts/run.sh

test: venvs
	@scripts/test.sh

bench: venvs
	$(APP_VENV)/bin/python -m bench.run

# 200 WebSocket sessions doing voice turns against 2 CPU workers (see README, Load test).
load: venvs
	$(APP_VENV)/bin/python -m bench.load

lint: venvs
	$(APP_VENV)/bin/ruff check .

# rq-dashboard (queues, workers, failed jobs) for COUNCIL_REDIS_URL on http://127.0.0.1:9181, with
# RQ's JSON serializer; basic auth when RQ_DASHBOARD_PASSWORD is set (see scripts/dashboard.py).
dashboard: $(APP_VENV)/.built
	$(APP_VENV)/bin/python scripts/dashboard.py

clean:
	rm -rf $(APP_VENV) $(WORKER_VENV) artifacts
