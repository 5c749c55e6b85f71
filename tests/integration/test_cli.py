"""`python -m queues`: transcribe files and speak text through a real worker, from a terminal."""

import os
import subprocess
import sys
import wave

import pytest

pytestmark = pytest.mark.usefixtures("worker")


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COUNCIL_REDIS_URL": settings.redis_url}
    return subprocess.run([sys.executable, "-m", "queues", *args], env=env, capture_output=True, text=True, timeout=90)


def test_transcribe_files(settings, flite, tmp_path):
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    first.write_bytes(flite("open the pod bay doors"))
    second.write_bytes(b"definitely not audio" * 10)
    done = cli(settings, "transcribe", str(first), str(second))
    assert done.returncode == 1  # one file failed
    assert "a.wav: Open the pod bay doors." in done.stdout
    assert "b.wav: failed (undecodable_audio)" in done.stderr


def test_speak_into_a_wav(settings, tmp_path):
    out = tmp_path / "hello.wav"
    done = cli(settings, "speak", "Hello there. How are you today?", "--voice", "ada", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as w:
        assert 1.5 < w.getnframes() / w.getframerate() < 6
    assert "How are you today?" in done.stderr


def test_unknown_voice_and_missing_file_say_what_to_do(settings, tmp_path):
    done = cli(settings, "speak", "Hi.", "--voice", "nobody", "--out", str(tmp_path / "x.wav"))
    assert done.returncode == 1 and "unknown_voice" in done.stderr and "max" in done.stderr
    missing = cli(settings, "transcribe", str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
