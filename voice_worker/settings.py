"""The worker's settings, read once from the environment at start and passed down."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from queues import QueueSettings, SettingsError

from .listening.endpointer import EndpointSettings

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
    # Liveness (see heartbeat.py, inflight.py, supervisor.py): a worker whose alive key is gone on
    # two beats in a row has its jobs taken over, so a dead worker's job runs again within
    # alive_ttl_s + 2 * beat_s. A job whose worker died max_crashes times fails instead.
    alive_ttl_s: float = 10.0
    beat_s: float = 2.0
    max_crashes: int = 2
    # The supervisor kills a child whose job runs hang_grace_s past its time limit, or that is
    # idle with no heartbeat for stall_s.
    hang_grace_s: float = 10.0
    stall_s: float = 60.0
    # Waiting `batch` jobs a batching STT engine (Parakeet) recognizes in one forward pass.
    batch_size: int = 8
    # The job queues this worker takes jobs from, in priority order (None: all of them). A worker on
    # speech and realtime only keeps capacity for conversations that no batch file can take.
    queues_served: tuple[str, ...] | None = None
    # A long transcription is worked in pieces (VAD spans of at most 30 s). Between two pieces it goes
    # back to its queue, its progress saved, when speech or realtime work waits, and after this many
    # seconds of work (at most half its time limit, which then bounds one run, not the whole file).
    slice_s: float = 30.0
    # Functions this worker runs besides Council's jobs (dotted names); any other job is refused.
    extra_functions: tuple[str, ...] = ()
    # Streamed microphones this worker listens to at once, beside its jobs (0: none), with
    # Smart Turn as the end-of-turn model (TURN_MODEL: another smart-turn-v3 .onnx file).
    listeners: int = 4
    turn_model: Path | None = None
    endpoint: EndpointSettings = EndpointSettings()
    # A stream with no frame for this long is over (its app is gone).
    listen_idle_s: float = 10.0

    @property
    def queue_names(self) -> tuple[str, ...]:
        """The job queues this worker serves, in the order it serves them."""
        return self.queues_served if self.queues_served is not None else self.queues.queue_names

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

        def number(name: str, default: float, kind: type = float) -> float:
            try:
                value = kind(environ.get(name, default))
            except ValueError:
                raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}") from None
            if value <= 0:
                raise SettingsError(f"{name} must be more than 0")
            return value

        threads = int(number("WORKER_THREADS", 2, int))
        listeners = environ.get("WORKER_LISTENERS", "4")
        if not listeners.isdigit():
            raise SettingsError("WORKER_LISTENERS must be a whole number (0: this worker does not listen)")
        endpoint = EndpointSettings(
            pause_ms=int(number("LISTEN_PAUSE_MS", 200, int)),
            max_silence_ms=int(number("LISTEN_MAX_SILENCE_MS", 1500, int)),
            max_turn_ms=int(number("LISTEN_MAX_TURN_S", 60.0) * 1000),
            turn_threshold=number("LISTEN_TURN_THRESHOLD", 0.5),
        )
        if endpoint.max_silence_ms <= endpoint.pause_ms:
            raise SettingsError("LISTEN_MAX_SILENCE_MS must be more than LISTEN_PAUSE_MS")
        if endpoint.turn_threshold >= 1:
            raise SettingsError("LISTEN_TURN_THRESHOLD is a probability: more than 0, less than 1")
        alive_ttl_s, beat_s = number("WORKER_ALIVE_TTL", 10.0), number("WORKER_BEAT", 2.0)
        if beat_s * 2 > alive_ttl_s:
            raise SettingsError("WORKER_BEAT must be at most half of WORKER_ALIVE_TTL")
        queues = QueueSettings.from_env(environ)
        served = tuple(q.strip() for q in environ.get("WORKER_QUEUES", "").split(",") if q.strip())
        if any(q not in queues.queue_names for q in served):
            raise SettingsError(f"WORKER_QUEUES={','.join(served)!r}: name some of {', '.join(queues.queue_names)}")
        return cls(
            queues=queues,
            queues_served=tuple(q for q in queues.queue_names if q in served) if served else None,
            slice_s=number("WORKER_SLICE_S", 30.0),
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
            alive_ttl_s=alive_ttl_s,
            beat_s=beat_s,
            max_crashes=int(number("WORKER_MAX_CRASHES", 2, int)),
            hang_grace_s=number("WORKER_HANG_GRACE", 10.0),
            stall_s=number("WORKER_STALL", 60.0),
            batch_size=int(number("WORKER_BATCH", 8, int)),
            extra_functions=tuple(f.strip() for f in environ.get("WORKER_EXTRA_FUNCTIONS", "").split(",") if f.strip()),
            listeners=int(listeners),
            turn_model=path("TURN_MODEL"),
            endpoint=endpoint,
            listen_idle_s=number("LISTEN_IDLE_S", 10.0),
        )
