"""The worker's settings, read once from the environment at start and passed down."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from queues import QueueSettings, SettingsError

STT_ENGINES = ("whisper", "parakeet")
TTS_ENGINES = ("piper", "espeak", "coqui")
DEFAULT_TTS = ("piper", "espeak")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class WorkerSettings:
    queues: QueueSettings
    name: str | None = None
    # Which engines this worker loads. TTS engines pool their voices; the first one that knows a
    # voice speaks it.
    stt_engine: str = "whisper"
    tts_engines: tuple[str, ...] = DEFAULT_TTS
    vad: bool = True
    # Where operators put model weights (MODEL_DIR/parakeet/*.nemo, MODEL_DIR/coqui/); the CPU
    # engines default to the models in their packages.
    model_dir: Path | None = None
    whisper_model_dir: Path | None = None
    piper_model: Path | None = None
    parakeet_model: Path | None = None
    coqui_model_dir: Path | None = None
    # GPU engines: "auto" takes CUDA when torch sees it.
    device: str = "auto"
    threads: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        def path(name: str) -> Path | None:
            value = environ.get(name)
            return Path(value) if value else None

        stt = environ.get("STT_ENGINE", "whisper")
        if stt not in STT_ENGINES:
            raise SettingsError(f"STT_ENGINE={stt!r} is not one of {', '.join(STT_ENGINES)}")
        tts = tuple(t.strip() for t in environ.get("TTS_ENGINE", ",".join(DEFAULT_TTS)).split(",") if t.strip())
        unknown = [t for t in tts if t not in TTS_ENGINES]
        if unknown or not tts:
            raise SettingsError(f"TTS_ENGINE={','.join(tts)!r}: choose from {', '.join(TTS_ENGINES)}")
        device = environ.get("WORKER_DEVICE", "auto")
        if device not in DEVICES:
            raise SettingsError(f"WORKER_DEVICE={device!r} is not one of {', '.join(DEVICES)}")
        try:
            threads = int(environ.get("WORKER_THREADS", "2"))
        except ValueError:
            raise SettingsError("WORKER_THREADS must be an integer") from None
        return cls(
            queues=QueueSettings.from_env(environ),
            name=environ.get("WORKER_NAME") or None,
            stt_engine=stt,
            tts_engines=tts,
            vad=environ.get("WORKER_VAD", "1") not in ("0", "false", "no"),
            model_dir=path("MODEL_DIR"),
            whisper_model_dir=path("WHISPER_MODEL_DIR"),
            piper_model=path("PIPER_MODEL"),
            parakeet_model=path("PARAKEET_MODEL"),
            coqui_model_dir=path("COQUI_MODEL_DIR"),
            device=device,
            threads=threads,
        )
