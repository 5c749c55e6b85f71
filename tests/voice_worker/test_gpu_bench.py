"""bench/gpu: the GPU benchmark, run here at its tiny size on the CPU through a real worker and
Redis, and its published-size builders checked against the published parameter counts (counted
on the meta device: the 467 M and 618 M parameter models are not built here)."""

import json
import math
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

pytest.importorskip("TTS", reason="coqui-tts is not installed in this interpreter", exc_type=ImportError)

from bench.gpu import models  # noqa: E402  (after the skip: it is the worker's)

pytestmark = [
    pytest.mark.skipif(find_spec("nemo") is None, reason="nemo-toolkit is not installed in this interpreter"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH"),
    # Raised by NeMo, Lightning and torch as they import and build, not by our code.
    pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    "xtts_first_chunk_ms", "xtts_first_chunk_p90_ms", "xtts_audio_s_per_s", "xtts_audio_s_per_sentence",
    "parakeet_3s_ms", "parakeet_3s_p90_ms", "parakeet_batch64_rtf", "parakeet_batch64_s",
    "parakeet_batch64_audio_s", "parakeet_batch64_compute_ms", "worker_start_s", "build_s", "total_s",
)  # fmt: skip
TURN_FIGURES = ("first_audio_after_turn_ms", "turn_endpoint_ms", "turn_voice_response_ms")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_tiny_benchmark_runs_through_a_real_worker_and_redis(tmp_path: Path):
    out = tmp_path / "gpu.json"
    args = ["--size", "tiny", "--device", "cpu", "--out", str(out), "--sentences", "2", "--runs", "2", "--turns", "1"]
    args += ["--batch-warmups", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu.run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr[-4000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    result = json.loads(out.read_text())
    assert printed == result
    turns = shutil.which("flite") is not None  # the spoken question is made with flite here
    for key in FIGURES + (TURN_FIGURES if turns else ()):
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    assert result["xtts_sentences"] == 2 and result["parakeet_3s_runs"] == 2
    # The 64 clips were waiting together, and the worker gave them to the engine at once.
    assert result["parakeet_batch64_taken"] == [64]
    assert 64 * 5 <= result["parakeet_batch64_audio_s"] <= 64 * 15
    # Streaming: each sentence came in several chunks, and ran to the cap (the stop token suppressed).
    assert result["xtts_chunks_per_sentence"] >= 2
    cap_s = (models.XTTS_TINY["gpt_max_audio_tokens"] - 3) * 1024 / 22_050
    assert result["xtts_audio_s_per_sentence"] == pytest.approx(cap_s, abs=0.15)
    if turns:
        assert result["turns"] == 1 and "turn_skipped" not in result
    assert result["size"] == "tiny" and result["device"] == "cpu" and result["gpu_name"] is None
    assert result["torch"] and result["date"]
    assert any("capped at" in note and "stop token" in note for note in result["notes"])


def test_the_published_xtts_has_xtts_v2s_size():
    """XTTS v2: 466.9 M parameters (the GPT with its heads and conditioning, the HiFi-GAN decoder
    and its speaker encoder), built on the meta device from the published config."""
    args = models.xtts_config("published").model_args
    assert (args.gpt_layers, args.gpt_n_model_channels, args.gpt_n_heads) == (30, 1024, 16)
    assert (args.gpt_num_audio_tokens, args.gpt_max_audio_tokens, args.gpt_use_perceiver_resampler) == (1026, 605, True)
    assert math.isclose(models.count_xtts_params("published"), 466.9e6, rel_tol=0.005)
    # The benchmark's cap: a sentence's worth of audio tokens, saved in the config the worker reads.
    capped = models.xtts_config("published", max_audio_tokens=models.XTTS_BENCH_AUDIO_TOKENS).model_args
    assert capped.gpt_max_audio_tokens == models.XTTS_BENCH_AUDIO_TOKENS
    assert 3 <= models.XTTS_BENCH_AUDIO_S <= 5


def test_the_published_parakeet_has_parakeet_tdt_0_6bs_size():
    config = models.parakeet_config("published", "")
    encoder = config["encoder"]
    assert (encoder["n_layers"], encoder["d_model"], encoder["n_heads"], encoder["feat_in"]) == (24, 1024, 8, 128)
    assert (encoder["subsampling"], encoder["subsampling_factor"], encoder["conv_kernel_size"]) == ("dw_striding", 8, 9)
    assert config["decoder"]["prednet"] == {"pred_hidden": 640, "pred_rnn_layers": 2, "t_max": None, "dropout": 0.0}
    assert config["decoding"]["durations"] == [0, 1, 2, 3, 4]
    count = models.count_parakeet_params("published")
    assert 0.59e9 <= count <= 0.64e9, count  # "0.6b": 618 M
    assert models.count_parakeet_params("tiny") < 100_000  # the tests' 39 k-parameter model
