"""Engines are closed when their worker stops (issue #25): every engine interface has `close()`,
`Engines.close()` closes each even when one fails, and a real worker process that is stopped
(SIGTERM, as a deploy stops it) closes the engines it loaded."""

from collections.abc import Mapping

import pytest

from voice_worker.audio import Audio
from voice_worker.engines import Engines
from voice_worker.stt import STT
from voice_worker.stt.base import STTCapabilities
from voice_worker.stt.whisper import WhisperSTT, default_model_dir
from voice_worker.tts import TTS
from voice_worker.tts.base import TTSCapabilities


class Closing(Exception):
    pass


class TinySTT(STT):
    name = "tiny-stt"
    capabilities = STTCapabilities(word_timestamps=False, languages=("en",))

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def transcribe(self, audio: Audio, language: str = "en", offset_s: float = 0.0):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def close(self) -> None:
        self.closed.append(self.name)


class TinyTTS(TTS):
    capabilities = TTSCapabilities(sample_rate=16000)

    def __init__(self, name: str, closed: list[str], fails: bool = False) -> None:
        self.name, self.closed, self.fails = name, closed, fails

    @property
    def voices(self) -> Mapping[str, str]:
        return {self.name: "a tiny voice"}

    def synthesize(self, text: str, voice: str) -> Audio:
        raise NotImplementedError

    def close(self) -> None:
        self.closed.append(self.name)
        if self.fails:
            raise Closing(self.name)


def test_closing_the_engines_closes_each_even_when_one_fails():
    closed: list[str] = []
    engines = Engines(stt=TinySTT(closed), tts=[TinyTTS("a", closed), TinyTTS("b", closed, fails=True)])
    with pytest.raises(Closing):
        engines.close()
    assert sorted(closed) == ["a", "b", "tiny-stt"]


def test_whisper_lets_go_of_its_model():
    whisper = WhisperSTT(default_model_dir(), threads=1)  # its own: the session's is shared
    assert whisper._model.model.model_is_loaded
    whisper.close()
    assert not whisper._model.model.model_is_loaded


@pytest.mark.timeout(180)
def test_a_worker_that_is_stopped_closes_its_engines(workers, own_env, tmp_path):
    log = tmp_path / "worker.log"
    env = {**own_env, "TTS_ENGINE": "espeak", "WORKER_VAD": "0", "WORKER_LISTENERS": "0", "WORKER_THREADS": "1"}
    proc = workers.start(log, env)  # the supervisor and its child, as `python -m voice_worker` runs
    workers.stop(proc)  # SIGTERM: a warm shutdown
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    assert "engines closed: whisper, espeak" in output, output[-3000:]
