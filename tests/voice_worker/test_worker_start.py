"""A worker that cannot load its engines refuses to start, naming what is missing; one stopped
(Ctrl-C) while it starts stops, saying so, with no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voice_worker", "--burst"],
        cwd=ROOT,
        env={**os.environ, "COUNCIL_REDIS_URL": "redis://127.0.0.1:1/0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_model_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    done = start(WHISPER_MODEL_DIR=str(tmp_path))
    assert done.returncode == 2
    assert "cannot start" in done.stderr and str(tmp_path / "model.bin") in done.stderr


def test_missing_piper_voice_is_named(tmp_path):
    done = start(PIPER_MODEL=str(tmp_path / "voice.onnx"))
    assert done.returncode == 2 and "voice.onnx" in done.stderr


def test_bad_settings_are_named():
    done = start(TTS_ENGINE="festival")
    assert done.returncode == 2 and "TTS_ENGINE" in done.stderr


def test_gpu_engines_name_what_they_need(tmp_path):
    done = start(STT_ENGINE="parakeet")
    assert done.returncode == 2 and "MODEL_DIR" in done.stderr
    (tmp_path / "parakeet").mkdir()
    done = start(STT_ENGINE="parakeet", MODEL_DIR=str(tmp_path))
    assert done.returncode == 2 and "no .nemo file" in done.stderr
    done = start(TTS_ENGINE="coqui", MODEL_DIR=str(tmp_path))
    assert done.returncode == 2 and str(tmp_path / "coqui") in done.stderr
    assert start(WORKER_DEVICE="tpu").returncode == 2


def test_a_language_model_that_is_missing_is_named_before_any_loads(tmp_path):
    done = start(WORKER_QUEUES="llm", WORKER_LLM_MODELS="builtin,big")
    assert done.returncode == 2 and "MODEL_DIR/llm/big: set MODEL_DIR" in done.stderr
    done = start(WORKER_QUEUES="llm", WORKER_LLM_MODELS="big", MODEL_DIR=str(tmp_path))
    assert done.returncode == 2 and f"{tmp_path / 'llm' / 'big'} does not exist" in done.stderr


LOADS = """
import sys
from queues import QueueSettings
from voice_worker.engines import load_engines
from voice_worker.settings import WorkerSettings
voice = {"WORKER_QUEUES": "realtime", "TTS_ENGINE": "espeak", "WORKER_VAD": "0"}
engines = load_engines(WorkerSettings.from_env(voice))
print(engines.stt.name, sorted(engines.llms), "transformers" in sys.modules)
"""


def test_a_worker_not_serving_llm_never_imports_transformers():
    done = subprocess.run([sys.executable, "-c", LOADS], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["whisper", "[]", "False"]


@pytest.mark.parametrize("after_s", [0.3, 1.0, 2.0, 4.0, 8.0])
def test_ctrl_c_while_it_starts_is_a_stop_not_a_traceback(own_env, after_s):
    """`make run` stopped at once: the Ctrl-C reaches the worker's process group while Python loads
    its modules (seconds on a busy machine), or its models, or once it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_worker"],
        cwd=ROOT,
        env={**os.environ, **own_env, "WORKER_QUEUES": own_env["COUNCIL_REALTIME_QUEUE"], "TTS_ENGINE": "espeak"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert proc.returncode in (0, 130), out
