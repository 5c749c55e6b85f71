"""`python -m queues`: transcribe files and speak text through a real worker, from a terminal.

Every user error ends in one clear line on stderr and exit status 2, never a traceback."""

import os
import socket
import subprocess
import sys
import wave

import pytest
import redis

from queues import voices_key

pytestmark = pytest.mark.usefixtures("worker")


def cli(settings, *args: str, redis_url: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COUNCIL_REDIS_URL": redis_url or settings.redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "queues", *args], env=env, capture_output=True, text=True, timeout=90, cwd=cwd
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 and one line on stderr that holds `words`."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def jobs_in_redis(settings) -> int:
    return len(redis.Redis.from_url(settings.redis_url).keys("rq:job:cli-*"))


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
    assert f"wrote {out}" in done.stderr  # where it went, as an absolute path


def test_speak_to_stdout(settings):
    done = subprocess.run(
        [sys.executable, "-m", "queues", "speak", "Hello.", "--out", "-"],
        env={**os.environ, "COUNCIL_REDIS_URL": settings.redis_url},
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout[:4] == b"RIFF" and b"wrote" in done.stderr


def test_unknown_voice_and_missing_file_say_what_to_do(settings, tmp_path):
    done = cli(settings, "speak", "Hi.", "--voice", "nobody", "--out", str(tmp_path / "x.wav"))
    assert done.returncode == 1 and "unknown_voice" in done.stderr and "max" in done.stderr
    missing = cli(settings, "transcribe", str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_what_speak_refuses_is_said_in_one_line_before_any_work(settings, tmp_path):
    before = jobs_in_redis(settings)
    one_line_error(cli(settings, "speak", "x" * 4001, "--out", str(tmp_path / "x.wav")), "4001 characters", "1000")
    one_line_error(cli(settings, "speak", "   ", "--out", str(tmp_path / "x.wav")), "no text")
    one_line_error(cli(settings, "speak", "Hi.", "--voice", "no such", "--out", str(tmp_path / "x.wav")), "voices")
    one_line_error(cli(settings, "speak", "Hi.", "--out", "/nonexistent/dir/x.wav"), "/nonexistent/dir", "mkdir")
    one_line_error(cli(settings, "speak", "Hi.", "--out", str(tmp_path)), "is a folder")
    one_line_error(cli(settings, "speak", "Hi.", "--out", str(tmp_path / "x.mp3")), ".wav")
    assert jobs_in_redis(settings) == before  # nothing was asked of a worker


def test_speak_without_out_writes_nothing_and_says_why(settings, tmp_path):
    done = cli(settings, "speak", "Hello.", cwd=tmp_path)
    assert done.returncode == 2 and "--out" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_options_after_the_command_and_bad_values(settings, flite, tmp_path):
    clip = tmp_path / "pods.wav"
    clip.write_bytes(flite("open the pod bay doors"))
    done = cli(settings, "transcribe", str(clip), "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert "Open the pod bay doors." in done.stdout
    before = cli(settings, "--timeout", "30", "transcribe", str(clip), "--queue", "batch")
    assert before.returncode == 0, before.stderr
    bad = cli(settings, "transcribe", str(clip), "--timeout", "0")
    assert bad.returncode == 2 and "more than 0" in bad.stderr


def test_folders_are_walked_and_missing_files_do_not_stop_the_rest(settings, flite, tmp_path):
    folder = tmp_path / "memos"
    (folder / "old").mkdir(parents=True)
    (folder / "noon.wav").write_bytes(flite("the meeting starts at noon"))
    (folder / "old" / "report.wav").write_bytes(flite("bring the quarterly report"))
    (folder / "notes.txt").write_text("not audio")
    (folder / ".DS_Store").write_bytes(b"\0")
    missing = tmp_path / "nope.wav"
    done = cli(settings, "transcribe", str(missing), str(folder))
    assert done.returncode == 1, done.stderr  # the missing file counts as a failure, at the end
    assert f"{missing}: no such file" in done.stderr
    assert "skipped 1 file that is not" in done.stderr and "notes.txt" in done.stderr and "1 hidden" in done.stderr
    # In the order named (a folder's files sorted, sub-folders included), progress on stderr.
    lines = done.stdout.strip().splitlines()
    assert [line.partition(": ")[0] for line in lines] == [str(folder / "noon.wav"), str(folder / "old/report.wav")]
    assert "noon" in lines[0].lower() and "report" in lines[1].lower()
    assert "[2/3]" in done.stderr and "[3/3]" in done.stderr


def test_help_lists_the_voices_the_workers_announced(settings):
    voices = {k.decode() for k in redis.Redis.from_url(settings.redis_url).hkeys(voices_key(settings))}
    assert {"max", "ada"} <= voices
    for args in (["--help"], ["speak", "--help"]):
        done = cli(settings, *args)
        assert done.returncode == 0, done.stderr
        assert all(f"  {name} " in done.stdout for name in voices), done.stdout
    listed = cli(settings, "voices")
    assert listed.returncode == 0 and {line.split("\t")[0] for line in listed.stdout.splitlines()} == voices


def test_no_worker_a_timeout_says_so_and_cancels(settings, own_redis, flite, tmp_path):
    """A Redis that no worker serves: the CLI warns at once, and a job with no answer in time is
    cancelled, with a sentence, not a TimeoutError."""
    clip = tmp_path / "pods.wav"
    clip.write_bytes(flite("open the pod bay doors"))
    done = cli(settings, "transcribe", str(clip), "--timeout", "0.5", redis_url=own_redis.url)
    assert done.returncode == 1
    assert "no voice worker serves the 'realtime' queue" in done.stderr
    assert "no answer within 0.5 s, so the job was cancelled" in done.stderr
    spoken = cli(
        settings, "speak", "Hello.", "--out", str(tmp_path / "x.wav"), "--timeout", "0.01", redis_url=own_redis.url
    )
    assert spoken.returncode == 1 and "failed (timeout): no answer within 0.01 s" in spoken.stderr
    assert not (tmp_path / "x.wav").exists()
    helped = cli(settings, "--help", redis_url=own_redis.url)
    assert "no worker has announced any" in helped.stdout


def test_redis_away_is_one_line(settings, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    one_line_error(cli(settings, "transcribe", str(tmp_path / "a.wav"), redis_url=url), "does not answer")
    assert "does not answer" in cli(settings, "--help", redis_url=url).stdout
