"""Loading the engines a worker serves with, once, and finding the one that speaks a voice.

A worker loads what its queues need: the voice engines (STT, TTS, VAD, turn model) when it serves a
voice queue, the language models when it serves `llm` (`WORKER_QUEUES=llm`: those alone, and
transformers is never imported by a worker that does not serve `llm`)."""

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared_schemas import ErrorCode

from .errors import EngineLoadError, VoiceError
from .llm import LLM
from .llm.models import ModelFiles, find
from .settings import WorkerSettings
from .stt import STT
from .tts import TTS
from .turn import TurnModel
from .vad import VAD

log = logging.getLogger(__name__)


@dataclass
class Engines:
    stt: STT | None = None  # None: a worker that serves only `llm`
    tts: list[TTS] = field(default_factory=list)
    vad: VAD | None = None
    # Listening to streamed microphones needs the VAD and the end-of-turn model.
    turn: TurnModel | None = None
    # Language models by the name jobs give (GenerationJob.model).
    llms: dict[str, LLM] = field(default_factory=dict)
    voices: dict[str, TTS] = field(init=False)

    def __post_init__(self) -> None:
        self.voices = {}
        for engine in self.tts:
            for voice in engine.voices:
                self.voices.setdefault(voice, engine)

    def close(self) -> None:
        """Close every engine (once its worker has stopped): each is closed even when one before it
        fails, and the first failure is raised after all were closed."""
        engines = [self.stt, *self.tts, self.vad, self.turn, *self.llms.values()]
        closed = [engine for engine in engines if engine is not None]
        with contextlib.ExitStack() as stack:
            for engine in closed:
                stack.callback(engine.close)
        log.info("engines closed: %s", ", ".join(engine.name for engine in closed) or "none")

    def llm_for(self, model: str) -> LLM:
        engine = self.llms.get(model)
        if engine is None:
            served = ", ".join(sorted(self.llms)) or "none"
            raise VoiceError(
                ErrorCode.MODEL_NOT_FOUND, f"This worker serves no language model {model!r}. Models: {served}."
            )
        return engine

    def recognizer(self) -> STT:
        """The speech-to-text engine; a worker that serves only language models has none."""
        if self.stt is None:
            raise VoiceError(
                ErrorCode.INVALID_PAYLOAD, "This worker serves only language models; it transcribes nothing."
            )
        return self.stt

    def tts_for(self, voice: str) -> TTS:
        engine = self.voices.get(voice)
        if engine is None:
            known = ", ".join(sorted(self.voices))
            raise VoiceError(ErrorCode.UNKNOWN_VOICE, f"Unknown voice {voice!r}. Voices: {known}.")
        return engine


def load_engines(settings: WorkerSettings) -> Engines:
    """Load every configured engine; raises EngineLoadError naming what is missing."""
    started = time.perf_counter()
    engines = Engines()
    if settings.serves_voice:
        engines = Engines(
            stt=_load_stt(settings),
            tts=[_load_tts(name, settings) for name in settings.tts_engines],
            vad=_load_vad(settings),
            turn=_load_turn(settings),
        )
    if settings.serves_llm:
        # Every model's files found before any is loaded: a missing one is named at once.
        files = {name: find(name, settings.model_dir) for name in settings.llm_models}
        engines.llms = {name: _load_llm(name, found, settings) for name, found in files.items()}
    log.info(
        "engines loaded in %.2f s: stt=%s tts=%s vad=%s turn=%s voices=%s llms=%s",
        time.perf_counter() - started,
        engines.stt and engines.stt.name,
        [t.name for t in engines.tts],
        engines.vad and engines.vad.name,
        engines.turn and engines.turn.name,
        sorted(engines.voices),
        sorted(engines.llms),
    )
    return engines


def _load_stt(settings: WorkerSettings) -> STT:
    if settings.stt_engine == "parakeet":
        model = settings.parakeet_model or _one_nemo(_under_model_dir(settings, "parakeet"))
        from .stt.parakeet import ParakeetSTT

        return ParakeetSTT(model, device=settings.device, batch_size=settings.batch_size)
    from .stt.whisper import WhisperSTT, default_model_dir

    return WhisperSTT(settings.whisper_model_dir or default_model_dir(), threads=settings.threads)


def _load_tts(name: str, settings: WorkerSettings) -> TTS:
    if name == "piper":
        from .tts.piper import PiperTTS, default_model_path

        return PiperTTS(settings.piper_model or default_model_path())
    if name == "coqui":
        model_dir = settings.coqui_model_dir or _under_model_dir(settings, "coqui")
        from .tts.coqui import CoquiTTS

        return CoquiTTS(model_dir, device=settings.device)
    from .tts.espeak import EspeakTTS

    return EspeakTTS()


def _load_llm(name: str, files: ModelFiles, settings: WorkerSettings) -> LLM:
    from .llm.hf import TransformersLLM

    device, threads, batch = settings.device, settings.threads, settings.llm_batch
    quantize = settings.llm_quantize == "int8"
    return TransformersLLM(files, model=name, device=device, threads=threads, max_batch=batch, quantize=quantize)


def _under_model_dir(settings: WorkerSettings, name: str) -> Path:
    if settings.model_dir is None:
        raise EngineLoadError(f"the {name} engine loads its model from MODEL_DIR/{name}: set MODEL_DIR")
    folder = settings.model_dir / name
    if not folder.is_dir():
        raise EngineLoadError(f"{folder} does not exist: put the {name} model there (see deploy/README.md)")
    return folder


def _one_nemo(folder: Path) -> Path:
    found = sorted(folder.glob("*.nemo")) if folder.is_dir() else []
    if len(found) != 1:
        what = "no .nemo file" if not found else f"{len(found)} .nemo files ({', '.join(f.name for f in found)})"
        raise EngineLoadError(f"{folder} holds {what}; put exactly one there, or set PARAKEET_MODEL to the file")
    return found[0]


def _load_vad(settings: WorkerSettings) -> VAD | None:
    if not settings.vad:
        return None
    from .vad.silero import SileroVAD

    return SileroVAD()


def _load_turn(settings: WorkerSettings) -> TurnModel | None:
    if not settings.vad or settings.listeners == 0:
        return None
    from .turn.smart_turn import SmartTurn

    return SmartTurn(settings.turn_model)
