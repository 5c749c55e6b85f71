"""The app never imports the worker or torch; the worker never imports the app or the council."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded(python: str, modules: str) -> set[str]:
    out = subprocess.run([python, "-c", PROBE, modules], cwd=ROOT, check=True, capture_output=True, text=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


def test_app_side_loads_neither_the_worker_nor_torch():
    names = loaded(sys.executable, "web,council,queues,shared_schemas,queues.__main__")
    assert sys.version_info[:2] == (3, 13)
    assert "queues" in names and "web" in names
    assert not names & {"voice_worker", "torch", "numpy", "faster_whisper", "piper", "silero_vad", "onnxruntime"}


def test_worker_side_never_imports_the_app_or_the_council(worker_python):
    names = loaded(worker_python, "voice_worker.__main__,voice_worker.worker,voice_worker.jobs,voice_worker.engines")
    assert "voice_worker" in names
    assert not names & {"web", "council", "starlette", "uvicorn", "langgraph", "langchain_core"}
