"""The app never imports the worker or torch; the worker never imports the app or the council.

Every module of each side is imported (the packages are walked), so an `import torch` anywhere in
`web` or a `from web import ...` anywhere in `voice_worker` fails here, not only in the modules a
test happens to name. Modules that load an engine's heavy framework only when that engine is built
(the GPU engines import torch and NeMo or TTS inside their constructors) are imported too: what
counts is what importing them loads.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys
names = []
for package in sys.argv[1].split(","):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if info.name.endswith(".__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
print(json.dumps({"walked": names, "loaded": sorted(sys.modules)}))
"""

WORKER_ONLY = {
    "voice_worker",
    "torch",
    "faster_whisper",
    "piper",
    "silero_vad",
    "onnxruntime",
    "ctranslate2",
    "nemo",
    "TTS",
}
APP_ONLY = {"web", "council", "starlette", "uvicorn", "langgraph", "langchain_core", "bench"}


def walk(python: str, packages: str) -> tuple[list[str], set[str]]:
    out = subprocess.run([python, "-c", PROBE, packages], cwd=ROOT, check=True, capture_output=True, text=True)
    found = json.loads(out.stdout)
    return found["walked"], {name.split(".")[0] for name in found["loaded"]}


def test_every_module_of_the_app_side_loads_neither_the_worker_nor_torch():
    walked, loaded = walk(sys.executable, "web,council,queues,billing,shared_schemas")
    assert sys.version_info[:2] == (3, 13)
    assert {"web.chat", "web.mic", "web.batch", "council.graph", "queues.mic", "billing._ledger"} <= set(walked)
    assert len(walked) > 60, walked
    assert not loaded & WORKER_ONLY, sorted(loaded & WORKER_ONLY)


def test_every_module_of_the_worker_side_never_imports_the_app_or_the_council(worker_python):
    walked, loaded = walk(worker_python, "voice_worker,queues,billing,shared_schemas")
    assert {
        "voice_worker.listening.listener",
        "voice_worker.stt.parakeet",
        "voice_worker.tts.coqui",
        "billing._ledger",
    } <= set(walked)
    assert not loaded & APP_ONLY, sorted(loaded & APP_ONLY)
