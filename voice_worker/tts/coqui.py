"""Coqui TTS (coqui-tts): a multi-speaker VITS or XTTS v2 from a model directory, one speaker per voice.

The operator puts the model in MODEL_DIR/coqui (mounted read-only):

    config.json                     the model's config ("model": "vits" or "xtts")
    model.pth                       the checkpoint (or best_model.pth, model_file.pth)
    speakers.json / speaker_ids.json   VITS speaker ids, or a d-vector file named by the config
    vocab.json, speakers_xtts.pth   XTTS: its tokenizer and built-in speakers
    voices/NAME.wav                 XTTS: a reference clip per cloned voice
    voices.json                     optional: council voice -> model speaker, {"max": "p225", ...}

File paths inside config.json are made absolute in the model directory in a patched copy; the
directory itself is never written, and nothing is downloaded. Without voices.json every speaker
of the model is a voice, its name made fit for a voice name.
"""

import json
import logging
import pickle
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from shared_schemas import ErrorCode

from ..audio import Audio, resample
from ..errors import EngineLoadError, VoiceError
from .base import TTS, TTSCapabilities

log = logging.getLogger(__name__)

CHECKPOINTS = ("model.pth", "best_model.pth", "model_file.pth")
SUPPORTED_MODELS = ("vits", "xtts")
VOICE_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
XTTS_LANGUAGE = "en"
XTTS_REFERENCE_RATE = 22_050


@dataclass(frozen=True)
class _PathKey:
    """A file path in config.json (top level and model_args), and when the model reads it."""

    key: str
    needed: Any  # (config dict, model dir) -> bool


def _flag(config: dict[str, Any], key: str) -> Any:
    """A setting read the way coqui-tts reads it: model_args first, then the top level."""
    value = (config.get("model_args") or {}).get(key)
    return value if value is not None else config.get(key)


_PATH_KEYS = (
    _PathKey("speakers_file", lambda c, d: bool(_flag(c, "use_speaker_embedding")) and not c.get("speakers")),
    _PathKey("speaker_file", lambda c, d: bool(_flag(c, "use_speaker_embedding")) and not c.get("speakers")),
    _PathKey("d_vector_file", lambda c, d: bool(_flag(c, "use_d_vector_file"))),
    _PathKey("language_ids_file", lambda c, d: bool(_flag(c, "use_language_embedding"))),
    _PathKey("speaker_encoder_model_path", lambda c, d: True),
    _PathKey("speaker_encoder_config_path", lambda c, d: True),
    _PathKey("tokenizer_file", lambda c, d: c.get("model") == "xtts" and not (d / "vocab.json").is_file()),
)
# Speaker-id files a VITS directory may hold when its config names none.
_SPEAKER_FILES = ("speakers.json", "speaker_ids.json", "speakers.pth")


class CoquiTTS(TTS):
    """One Coqui model loaded once; each council voice speaks as one of its speakers."""

    name = "coqui"

    def __init__(self, model_dir: Path, *, voices: Mapping[str, str] | None = None, device: str = "auto"):
        model_dir = Path(model_dir).resolve()
        started = time.perf_counter()
        config_path, checkpoint = _model_files(model_dir)
        raw = _read_json(config_path)
        kind = raw.get("model")
        if kind not in SUPPORTED_MODELS:
            raise EngineLoadError(
                f"{config_path}: model {kind!r} is not supported; the coqui engine loads {', '.join(SUPPORTED_MODELS)}"
                " (models that speak without a separate vocoder)."
            )
        torch, load_config, setup_model = _import_coqui()
        self._torch = torch
        self._device = _device(torch, device)
        config = _load_patched_config(load_config, _patched(raw, model_dir))
        self._xtts = kind == "xtts"
        try:
            model = setup_model(config)
            if self._xtts:
                _load_xtts(model, config, model_dir, checkpoint, torch)
            else:
                model.load_checkpoint(config, checkpoint_path=str(checkpoint), eval=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
            raise EngineLoadError(f"Coqui model {model_dir} failed to load: {type(exc).__name__}: {exc}") from exc
        try:
            model.to(self._device)
        except RuntimeError as exc:  # CUDA out of memory, a driver or architecture mismatch
            raise EngineLoadError(f"Coqui model {model_dir} cannot move to {self._device}: {exc}") from exc
        self._model = model
        self._config = config
        audio = config.audio
        rate = int(audio.get("output_sample_rate") or audio["sample_rate"])
        self.capabilities = TTSCapabilities(sample_rate=rate, streaming=self._xtts)
        self._speakers = self._load_speakers(model_dir)
        mapping = voices if voices is not None else _voices_file(model_dir)
        self._voices = _voice_map(mapping, list(self._speakers), model_dir)
        log.info(
            "coqui %s from %s on %s in %.2f s: voices %s",
            kind, model_dir, self._device, time.perf_counter() - started, sorted(self._voices),
        )  # fmt: skip

    @property
    def voices(self) -> Mapping[str, str]:
        what = "XTTS v2" if self._xtts else "Coqui VITS"
        return {voice: f"{what}, speaker {speaker}" for voice, speaker in self._voices.items()}

    @property
    def device(self) -> str:
        return self._device

    def synthesize(self, text: str, voice: str) -> Audio:
        speaker = self._speaker(voice)
        rate = self.capabilities.sample_rate
        if not text.strip():
            return Audio(np.zeros(0, dtype=np.float32), rate)
        with self._torch.inference_mode():
            if self._xtts:
                latent, embedding = self._speakers[speaker]
                wav = self._model.inference(text, XTTS_LANGUAGE, latent, embedding, **self._xtts_settings())["wav"]
            else:
                wav = self._model.synthesize(text, speaker=speaker)["wav"]
        return _audio(wav, rate)

    def synthesize_stream(self, text: str, voice: str) -> Iterator[Audio]:
        """Speak `text` in pieces as they are made: XTTS yields its first piece (20 GPT tokens, about
        0.8 s of speech) long before the end. VITS yields the whole sentence at once."""
        if not self._xtts:
            yield from super().synthesize_stream(text, voice)
            return
        speaker = self._speaker(voice)
        if not text.strip():
            return
        latent, embedding = self._speakers[speaker]
        rate = self.capabilities.sample_rate
        pieces = self._model.inference_stream(text, XTTS_LANGUAGE, latent, embedding, **self._xtts_settings())
        while True:
            # Inference mode only while the model works: it is thread state, and must not leak into
            # the caller between pieces.
            with self._torch.inference_mode():
                piece = next(pieces, None)
            if piece is None:
                return
            yield _audio(piece, rate)

    def _speaker(self, voice: str) -> Any:
        try:
            return self._voices[voice]
        except KeyError:
            known = ", ".join(sorted(self._voices))
            raise VoiceError(ErrorCode.UNKNOWN_VOICE, f"Unknown voice {voice!r}. Voices: {known}.") from None

    def _xtts_settings(self) -> dict[str, Any]:
        c = self._config
        return {
            "temperature": c.temperature, "length_penalty": c.length_penalty,
            "repetition_penalty": c.repetition_penalty, "top_k": c.top_k, "top_p": c.top_p,
        }  # fmt: skip

    def _load_speakers(self, model_dir: Path) -> dict[Any, Any]:
        """The model's speakers: name -> what synthesis needs (VITS: the name; XTTS: its latents)."""
        manager = getattr(self._model, "speaker_manager", None)
        if not self._xtts:
            names = list(manager.name_to_id) if manager is not None else []
            if manager is not None and not names:
                names = list(manager.embedding_names)
            # A single-speaker model takes no speaker: its one voice is named after the directory.
            return {name: name for name in names} if names else {None: None}
        speakers: dict[Any, Any] = {}
        if manager is not None:
            for name, latents in manager.speakers.items():
                speakers[name] = (latents["gpt_cond_latent"], latents["speaker_embedding"])
        for clip in sorted((model_dir / "voices").glob("*.wav")):
            speakers[clip.stem] = self._xtts_latents(clip)
        if not speakers:
            raise EngineLoadError(
                f"The XTTS model in {model_dir} has no speakers: add speakers_xtts.pth or reference clips "
                "voices/NAME.wav."
            )
        return speakers

    def _xtts_latents(self, clip: Path) -> tuple[Any, Any]:
        """Conditioning latents for a reference clip (read with soundfile: torchaudio's decoder is not needed)."""
        try:
            samples, rate = sf.read(clip, dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            raise EngineLoadError(f"The XTTS reference clip {clip} cannot be read: {exc}") from exc
        audio = resample(Audio(samples.mean(axis=1, dtype=np.float32), rate), XTTS_REFERENCE_RATE)
        tensor = self._torch.from_numpy(audio.samples).unsqueeze(0).to(self._device)
        c = self._config
        with self._torch.inference_mode():
            latent = self._model.get_gpt_cond_latents(
                tensor[:, : XTTS_REFERENCE_RATE * c.max_ref_len], XTTS_REFERENCE_RATE,
                length=c.gpt_cond_len, chunk_length=c.gpt_cond_chunk_len,
            )  # fmt: skip
            embedding = self._model.get_speaker_embedding(tensor, XTTS_REFERENCE_RATE)
        return latent, embedding


def _model_files(model_dir: Path) -> tuple[Path, Path]:
    if not model_dir.is_dir():
        raise EngineLoadError(f"The Coqui model directory {model_dir} does not exist.")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise EngineLoadError(f"The Coqui model file {config_path} is missing.")
    checkpoint = next((model_dir / n for n in CHECKPOINTS if (model_dir / n).is_file()), None)
    if checkpoint is None:
        raise EngineLoadError(
            f"The Coqui checkpoint {model_dir / CHECKPOINTS[0]} is missing "
            f"(also looked for {', '.join(CHECKPOINTS[1:])})."
        )
    return config_path, checkpoint


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineLoadError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EngineLoadError(f"{path} does not hold a JSON object.")
    return value


def _import_coqui() -> tuple[Any, Any, Any]:
    try:
        import torch
        from TTS.config import load_config
        from TTS.tts.models import setup_model
    except ImportError as exc:
        raise EngineLoadError(
            f"The coqui engine needs coqui-tts with torch, torchaudio and torchcodec in the worker: {exc}".strip()
        ) from exc
    return torch, load_config, setup_model


def _device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineLoadError(
            f"WORKER_DEVICE=cuda, but torch {torch.__version__} sees no CUDA device "
            f"(built for CUDA {torch.version.cuda or 'none'}); check the driver or set WORKER_DEVICE=cpu."
        )
    if device not in ("cpu", "cuda"):
        raise EngineLoadError(f"device {device!r} is not one of auto, cpu, cuda.")
    return device


def _patched(config: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """config.json with its file paths absolute in `model_dir`; raises naming a needed file that is missing."""
    config = json.loads(json.dumps(config))
    model_args = config.get("model_args") or {}
    for path_key in _PATH_KEYS:
        needed = path_key.needed(config, model_dir)
        for section in (config, model_args):
            value = section.get(path_key.key)
            if not value:
                continue
            named = value if isinstance(value, list) else [value]
            found = [_in_model_dir(v, model_dir) for v in named]
            missing = [model_dir / Path(v).name for v, f in zip(named, found, strict=True) if f is None]
            if missing and needed:
                raise EngineLoadError(
                    f"The Coqui model file {missing[0]} is missing (config.json names it as {path_key.key})."
                )
            if missing:
                section[path_key.key] = None  # named but unused: keep coqui-tts from reading it
            else:
                section[path_key.key] = [str(f) for f in found] if isinstance(value, list) else str(found[0])
    # A speaker-embedding VITS whose config names no speaker file: the usual names in the directory.
    if _flag(config, "use_speaker_embedding") and not config.get("speakers"):
        if not (_flag(config, "speakers_file") or _flag(config, "speaker_file")):
            speakers = next((model_dir / n for n in _SPEAKER_FILES if (model_dir / n).is_file()), None)
            if speakers is None:
                raise EngineLoadError(
                    f"The Coqui speakers file {model_dir / _SPEAKER_FILES[0]} is missing (the model uses speaker ids)."
                )
            config["speakers_file"] = model_args["speakers_file"] = str(speakers)
    audio = config.get("audio") or {}
    if audio.get("stats_path"):
        stats = _in_model_dir(audio["stats_path"], model_dir)
        if stats is None:
            raise EngineLoadError(f"The Coqui model file {model_dir / Path(audio['stats_path']).name} is missing.")
        audio["stats_path"] = str(stats)
    return config


def _in_model_dir(value: str, model_dir: Path) -> Path | None:
    """Where a path from config.json lies in the model directory: as written, or by its file name
    (configs keep the absolute paths of the machine they were trained on)."""
    path = Path(value)
    for candidate in (model_dir / path, model_dir / path.name):
        if candidate.is_file():
            return candidate
    return None


def _load_patched_config(load_config: Any, config: dict[str, Any]) -> Any:
    with tempfile.TemporaryDirectory(prefix="coqui-config-") as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        try:
            return load_config(str(path))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EngineLoadError(f"The Coqui config.json is not a valid {config.get('model')} config: {exc}") from exc


def _load_xtts(model: Any, config: Any, model_dir: Path, checkpoint: Path, torch: Any) -> None:
    """XTTS's own loader, except that it never writes: coqui-tts rewrites an old checkpoint that holds a
    pickled config in place, and the operator's directory is read-only."""
    from trainer.io import load_fsspec
    from TTS.tts.models import xtts

    def read_weights(path: Path) -> dict[str, Any]:
        try:
            state = load_fsspec(str(path), map_location=torch.device("cpu"))
        except pickle.UnpicklingError:
            with xtts._legacy_safe_globals():
                state = torch.load(path, map_location=torch.device("cpu"), weights_only=True)
        weights: dict[str, Any] = state["model"]
        return weights

    model._load_checkpoint = read_weights
    vocab = model_dir / "vocab.json"
    model.load_checkpoint(
        config,
        checkpoint_dir=str(model_dir),
        checkpoint_path=str(checkpoint),
        vocab_path=str(vocab) if vocab.is_file() else None,
        eval=True,
    )


def _voices_file(model_dir: Path) -> Mapping[str, str] | None:
    path = model_dir / "voices.json"
    if not path.is_file():
        return None
    mapping = _read_json(path)
    if not all(isinstance(v, str) for v in mapping.values()):
        raise EngineLoadError(f"{path} must map each voice name to a speaker name (strings).")
    return mapping


def _voice_map(mapping: Mapping[str, str] | None, speakers: list[Any], model_dir: Path) -> dict[str, Any]:
    """Council voice -> model speaker: the mapping given (checked), or every speaker under a safe name."""
    if mapping is None:
        if speakers == [None]:
            return {_safe_name(model_dir.name) or "coqui": None}
        voices: dict[str, Any] = {}
        for speaker in speakers:
            voices.setdefault(_safe_name(speaker), speaker)
        return voices
    if not mapping:
        raise EngineLoadError(f"The Coqui voice mapping for {model_dir} is empty.")
    if speakers == [None]:  # one speaker: every voice is it
        return dict.fromkeys(mapping)
    for voice, speaker in mapping.items():
        if not VOICE_NAME.fullmatch(voice):
            raise EngineLoadError(f"Coqui voice name {voice!r} must match [A-Za-z0-9_.+-]{{1,64}}.")
        if speaker not in speakers:
            known = ", ".join(str(s) for s in speakers)
            raise EngineLoadError(
                f"Coqui voice {voice!r} maps to speaker {speaker!r}, which the model lacks ({known})."
            )
    return dict(mapping)


def _safe_name(speaker: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", speaker)[:64]


def _audio(wav: Any, rate: int) -> Audio:
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().numpy()
    samples = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return Audio(samples, rate)
