"""Speech made at test time (flite, ffmpeg) and the offline engines, each loaded once per session."""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from voice_worker.stt.whisper import WhisperSTT, default_model_dir
from voice_worker.tts import EspeakTTS
from voice_worker.tts.piper import PiperTTS, default_model_path
from voice_worker.vad.silero import SileroVAD

FOX = "the quick brown fox jumps over the lazy dog"

# How ffmpeg turns flite's 16 kHz mono WAV into each input a user may send.
ENCODINGS = {
    "wav": [],
    "wav-stereo-44k": ["-ac", "2", "-ar", "44100", "-f", "wav"],
    "flac": ["-f", "flac"],
    "mp3": ["-f", "mp3"],
    "ogg-vorbis": ["-c:a", "libvorbis", "-f", "ogg"],
    "ogg-opus": ["-c:a", "libopus", "-f", "ogg"],
    "webm": ["-c:a", "libopus", "-f", "webm"],
    "m4a": ["-c:a", "aac", "-f", "ipod"],
    "aiff": ["-f", "aiff"],
}


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def speak_flite(audio_dir: Path) -> Callable[[str], bytes]:
    """WAV bytes of `text` in flite's slt voice (16 kHz mono)."""

    def speak(text: str) -> bytes:
        path = audio_dir / f"flite-{abs(hash(text))}.wav"
        if not path.exists():
            subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        return path.read_bytes()

    return speak


@pytest.fixture(scope="session")
def encode(audio_dir: Path) -> Callable[[bytes, str], bytes]:
    """Re-encode WAV bytes with ffmpeg into one of ENCODINGS."""

    def run(wav: bytes, encoding: str) -> bytes:
        if not ENCODINGS[encoding]:
            return wav
        source = audio_dir / f"in-{abs(hash(wav))}.wav"
        source.write_bytes(wav)
        target = audio_dir / f"out-{abs(hash(wav))}.{encoding}"
        command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *ENCODINGS[encoding]]
        subprocess.run([*command, str(target)], check=True)
        return target.read_bytes()

    return run


@pytest.fixture(scope="session")
def fox_text() -> str:
    return FOX


@pytest.fixture(scope="session")
def fox_wav(speak_flite: Callable[[str], bytes]) -> bytes:
    return speak_flite(FOX)


@pytest.fixture(scope="session")
def whisper() -> WhisperSTT:
    return WhisperSTT(default_model_dir(), threads=2)


@pytest.fixture(scope="session")
def piper() -> PiperTTS:
    return PiperTTS(default_model_path())


@pytest.fixture(scope="session")
def espeak() -> EspeakTTS:
    return EspeakTTS()


@pytest.fixture(scope="session")
def silero() -> SileroVAD:
    return SileroVAD()
