"""NVIDIA NeMo Parakeet (FastConformer + TDT or RNNT): the GPU speech recognizer.

Operators place a `.nemo` archive (for example parakeet-tdt-0.6b-v2.nemo) under MODEL_DIR/parakeet.
It is restored from that file alone: no hub, no download. Parakeet TDT and RNNT models are what
this is built and tested for (NeMo's CTC and hybrid models share the API, untested here);
Parakeet v2 speaks English only.

torch and NeMo are imported when the engine is built, so `voice_worker.stt` stays light.
"""

import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared_schemas import ErrorCode, Segment, Transcript, Word

from ..audio import Audio, resample
from ..errors import EngineLoadError, VoiceError
from .base import STT, STTCapabilities

LANGUAGES = ("en",)
# NeMo's transcribe() pads clips shorter than this on BOTH sides, which would shift every
# timestamp; padding them on the right ourselves first keeps time zero at the clip's start.
MIN_SECONDS = 1.0


class ParakeetSTT(STT):
    """A NeMo ASR model restored from a `.nemo` file, greedy decoding with word timestamps."""

    name = "parakeet"
    capabilities = STTCapabilities(word_timestamps=True, languages=LANGUAGES, batches=True)

    def __init__(self, model_path: Path, *, device: str = "auto", batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        _check_archive(self.model_path)
        try:
            import torch
            from nemo.collections.asr.models import ASRModel
            from omegaconf import open_dict
        except ImportError as exc:
            raise EngineLoadError(
                f"The Parakeet engine needs nemo-toolkit[asr] and torch ({exc.name} is missing): "
                "install the worker's nemo extra."
            ) from exc
        self._torch = torch
        # NeMo's transcribe() is not safe in two threads at once: it sets the model's modes (eval,
        # frozen modules, no dither) and puts them back at its end, so a second call running then
        # fails ("Cannot unfreeze partially without first freezing the module") or decodes with
        # dither. One forward pass at a time; a listener's clip waits at most for one batch.
        self._lock = threading.Lock()
        self.device = _pick_device(torch, device)
        self._model = _restore(ASRModel, self.model_path, torch.device(self.device))
        try:
            # Once here, instead of at each transcribe(timestamps=True) call.
            with open_dict(self._model.cfg.decoding):
                self._model.cfg.decoding.compute_timestamps = True
            self._model.change_decoding_strategy(self._model.cfg.decoding, verbose=False)
            self.sample_rate = int(self._model.cfg.sample_rate)
            # One encoder frame in seconds: the unit of NeMo's start_offset/end_offset.
            self._frame_s = float(self._model.cfg.preprocessor.window_stride) * self._model.encoder.subsampling_factor
        except (AttributeError, KeyError, ValueError) as exc:
            raise EngineLoadError(
                f"{self.model_path} is not a NeMo speech recognizer with timestamps ({type(exc).__name__}: {exc})."
            ) from exc

    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Transcript:
        return self._transcribe([audio], language, [offset_s])[0]

    def transcribe_many(
        self, audios: Sequence[Audio], language: str = "en", offsets: Sequence[float] | None = None
    ) -> list[Transcript]:
        """One transcript per clip, recognized `batch_size` clips per forward pass."""
        return self._transcribe(audios, language, offsets or [0.0] * len(audios))

    def _transcribe(self, audios: Sequence[Audio], language: str, offsets: Sequence[float]) -> list[Transcript]:
        _check_language(language)
        clips = [self._samples(audio) for audio in audios]
        hypotheses = []
        for start in range(0, len(clips), self.batch_size):
            batch = clips[start : start + self.batch_size]
            with self._lock, self._torch.inference_mode():
                found = self._model.transcribe(batch, batch_size=len(batch), timestamps=True, verbose=False)
            # RNNT models answer (best, n-best) in some NeMo versions; the best list comes first.
            hypotheses.extend(found[0] if isinstance(found, tuple) else found)
        return [
            to_transcript(
                hypothesis.text,
                getattr(hypothesis, "timestamp", None) or {},
                frame_s=self._frame_s,
                duration_s=audio.duration_s,
                offset_s=offset,
            )
            for hypothesis, audio, offset in zip(hypotheses, audios, offsets, strict=True)
        ]

    def _samples(self, audio: Audio) -> np.ndarray:
        samples = resample(audio, self.sample_rate).samples.astype(np.float32, copy=False)
        shortest = int(MIN_SECONDS * self.sample_rate)
        if len(samples) < shortest:
            samples = np.pad(samples, (0, shortest - len(samples)))
        return samples


def to_transcript(
    text: str, stamps: dict[str, list[dict[str, Any]]], *, frame_s: float, duration_s: float, offset_s: float = 0.0
) -> Transcript:
    """A Transcript from NeMo's timestamps (`Hypothesis.timestamp`: "word" and "segment" lists whose
    `start_offset`/`end_offset` count encoder frames of `frame_s` seconds), shifted by `offset_s`."""

    def span(item: dict[str, Any]) -> dict[str, float]:
        # Clamped to the clip: TDT's last token may last past its end, and padding lies after it.
        start = min(max(0.0, item["start_offset"] * frame_s), duration_s)
        end = min(max(start, item["end_offset"] * frame_s), duration_s)
        return {"start": round(start + offset_s, 3), "end": round(end + offset_s, 3)}

    words = stamps.get("word", [])
    pieces = stamps.get("segment") or ([{"segment": text, **_bounds(words)}] if words else [])
    segments, taken = [], 0
    for piece in pieces:
        # NeMo joins each segment's consecutive words with spaces: take words until the length matches.
        own, joined = [], -1
        while taken < len(words) and joined < len(str(piece["segment"])):
            joined += 1 + len(str(words[taken]["word"]))
            own.append(words[taken])
            taken += 1
        if piece is pieces[-1]:
            own.extend(words[taken:])
        if str(piece["segment"]).strip():
            segments.append(
                Segment(
                    text=str(piece["segment"]).strip(),
                    words=[Word(text=str(w["word"]).strip(), **span(w)) for w in own if str(w["word"]).strip()],
                    **span(piece),
                )
            )
    return Transcript(
        text=" ".join(segment.text for segment in segments),
        language=LANGUAGES[0],
        duration_s=round(duration_s, 3),
        segments=segments,
        engine=ParakeetSTT.name,
    )


def _bounds(words: list[dict[str, Any]]) -> dict[str, int]:
    return {"start_offset": words[0]["start_offset"], "end_offset": max(w["end_offset"] for w in words)}


def _check_archive(path: Path) -> None:
    if not path.is_file():
        raise EngineLoadError(f"Parakeet model file {path} does not exist.")
    if not tarfile.is_tarfile(path):
        raise EngineLoadError(f"Parakeet model file {path} is not a .nemo archive (a tar file saved by NeMo).")


def _pick_device(torch: Any, device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise EngineLoadError(f"Parakeet device {device!r} is not one of auto, cpu, cuda.")
    if device == "cpu":
        return "cpu"
    try:
        available = torch.cuda.is_available()
    except RuntimeError as exc:
        raise EngineLoadError(f"CUDA cannot be used on this worker: {exc}") from exc
    if device == "cuda" and not available:
        raise EngineLoadError(
            f"WORKER_DEVICE=cuda but torch {torch.__version__} sees no CUDA device "
            "(check the GPU reservation, the driver, and that torch is a CUDA build)."
        )
    return "cuda" if available else "cpu"


def _restore(model_class: Any, path: Path, device: Any) -> Any:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        model = model_class.restore_from(str(path), map_location=device)
    except (tarfile.TarError, EOFError) as exc:
        raise EngineLoadError(f"Parakeet model file {path} is not a readable .nemo archive: {exc}") from exc
    except OSError as exc:  # A tar without NeMo's model_config.yaml, or a disk that failed.
        raise EngineLoadError(f"Parakeet model file {path} could not be restored: {exc}") from exc
    except RuntimeError as exc:  # torch: weights that do not fit the config, CUDA errors, out of memory.
        raise EngineLoadError(f"Parakeet model {path} failed to load on {device}: {exc}") from exc
    except (HydraException, OmegaConfBaseException, KeyError, ValueError) as exc:
        raise EngineLoadError(f"Parakeet model file {path} holds a config NeMo cannot build: {exc}") from exc
    if not isinstance(model, model_class):
        raise EngineLoadError(f"{path} holds a {type(model).__name__}, not a NeMo speech recognizer.")
    return model.eval()


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise VoiceError(
            ErrorCode.INVALID_PAYLOAD,
            f"This worker's speech recognizer does not know language {language!r}. Use one of: {', '.join(LANGUAGES)}.",
        )
