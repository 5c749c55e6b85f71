"""Speech made at test time (flite, ffmpeg), the offline engines, each loaded once per session, and
`at_once`, which calls an engine from several threads together as a worker does."""

import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class Together:
    """What `at_once` saw: each caller's results in order, the exceptions raised, and the most
    calls that were inside the engine at the same moment."""

    results: dict[str, list[Any]]
    errors: list[BaseException]
    most_at_once: int


def _at_once(calls: Mapping[str, Callable[[], Any]], rounds: int = 4) -> Together:
    """Each call in its own thread, `rounds` times, every round released together (a barrier), as
    the worker's listener threads and its job loop reach one engine."""
    barrier = threading.Barrier(len(calls))
    lock, inside = threading.Lock(), [0, 0]  # now, most
    together = Together({name: [] for name in calls}, [], 0)

    def run(name: str, call: Callable[[], Any]) -> None:
        for _ in range(rounds):
            barrier.wait(timeout=60)
            with lock:
                inside[0] += 1
                inside[1] = max(inside[1], inside[0])
            try:
                together.results[name].append(call())
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
                together.errors.append(exc)
            finally:
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=run, args=item, name=f"at-once-{item[0]}") for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(100)
    together.most_at_once = inside[1]
    return together


@pytest.fixture(scope="session")
def at_once() -> Callable[..., Together]:
    return _at_once


def _beside_the_job_loop(stt: Any, clips: list[Any], long: Any) -> tuple[list[Any], Any]:
    """Listeners' `recognize` of `clips` (one thread each) and the job loop's `transcribe` of `long`
    on one engine at once, three rounds: every call gives what it gives alone, which is returned."""
    alone, alone_long = [stt.recognize(clip) for clip in clips], stt.transcribe(long)
    calls = {f"listener-{i}": (lambda clip=clip: stt.recognize(clip)) for i, clip in enumerate(clips)}
    together = _at_once({**calls, "job-loop": lambda: stt.transcribe(long)}, rounds=3)
    assert together.errors == []
    assert together.most_at_once >= 2, "the calls never overlapped: the test proved nothing"
    for i, expected in enumerate(alone):
        assert together.results[f"listener-{i}"] == [expected] * 3
    assert together.results["job-loop"] == [alone_long] * 3
    return alone, alone_long


@pytest.fixture(scope="session")
def beside_the_job_loop() -> Callable[..., tuple[list[Any], Any]]:
    """`beside_the_job_loop(stt, clips, long)`: see `_beside_the_job_loop`."""
    return _beside_the_job_loop
