"""`python -m queues`: talk to the voice workers from a terminal, without the web app.

  python -m queues transcribe meeting.mp3 memos/      folders are walked for audio files
  python -m queues speak "Hello there. How are you?" --voice max --out hello.wav
  python -m queues speak "Hello." --out - | aplay     the WAV on stdout
  python -m queues voices                             the voices the running workers speak
  python -m queues cancel BATCH_ID                    cancel a batch of /api/transcriptions (or job ids)

Transcripts go to stdout as `PATH: text`, in the order the files were named; progress,
skipped files and failures go to stderr. `speak` needs --out: it never picks a file name for
you, and it checks that --out can be written before it asks a worker for anything.
Options go before or after the command. Exit status: 0 when everything was done, 1 when a file
or the speech failed or timed out (the others still ran), 2 when nothing could be tried (a
usage error, Redis unreachable).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared_schemas import (
    AUDIO_FORMATS,
    MAX_TEXT_CHARS,
    VOICE_PATTERN,
    SpeechClip,
    SynthesisJob,
    TranscriptionJob,
    payloads,
)

from . import AsyncBlobStore, EventHub, JobClient, QueueSettings, SettingsError, live_workers, voices_key
from ._audiofiles import find_audio
from ._wavs import join_wavs

PROG = "python -m queues"
# Files transcribed at once: enough to keep several workers busy, few enough that the blobs of
# files still waiting for a worker do not pile up in Redis.
IN_FLIGHT = 8
PROBE_TIMEOUT_S = 2.0
START_WORKER = "start one with `.venv-worker/bin/python -m voice_worker` (or `make run`)"


class UsageError(Exception):
    """Something the person can fix before anything is sent; the message says what. Exit 2."""


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Clients:
    """The async clients one command uses: job client, event hub, blob store, on one connection."""

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings

    async def __aenter__(self) -> tuple[JobClient, EventHub, AsyncBlobStore]:
        self.connection = self.settings.connect_async()
        self.hub = EventHub(self.settings, self.connection)
        await self.hub.start()
        client = JobClient(self.settings, aconnection=self.connection)
        return client, self.hub, AsyncBlobStore(self.settings, self.connection)

    async def __aexit__(self, *exc: object) -> None:
        await self.hub.close()
        await self.connection.aclose()


async def _timed_out(client: JobClient, job_id: str, timeout: float) -> str:
    """The failure line for a job with no answer in time; a job still queued is cancelled."""
    if await client.acancel(job_id):
        return f"no answer within {timeout:g} s, so the job was cancelled (is a worker running? or raise --timeout)"
    return f"no answer within {timeout:g} s; the job may still finish on a worker (raise --timeout to wait for it)"


async def transcribe(settings: QueueSettings, files: list[Path], queue: str, timeout: float, failed: int) -> int:
    """Transcribe `files`, IN_FLIGHT at a time; `failed` files were refused before this."""
    total, finished = len(files) + failed, failed
    failures = failed
    async with _Clients(settings) as (client, hub, blobs):
        session = f"cli-{uuid.uuid4().hex[:10]}"
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(path: Path) -> str | None:
            nonlocal finished, failures
            async with slots:
                text, problem = await _transcribe_one(client, hub, blobs, session, path, queue, timeout)
            finished += 1
            if problem is None:
                _err(f"[{finished}/{total}] {path}: done")
            else:
                failures += 1
                _err(f"[{finished}/{total}] {path}: failed {problem}")
            return text

        tasks = [asyncio.create_task(one(path)) for path in files]
        for path, task in zip(files, tasks, strict=True):
            text = await task
            if text is not None:
                print(f"{path}: {text}", flush=True)
    return 1 if failures else 0


async def _transcribe_one(
    client: JobClient, hub: EventHub, blobs: AsyncBlobStore, session: str, path: Path, queue: str, timeout: float
) -> tuple[str | None, str | None]:
    """(text, None), or (None, why it failed)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"(unreadable): {exc.strerror}"
    suffix = path.suffix.lower().lstrip(".")
    job = TranscriptionJob(
        session_id=session,
        job_id=f"{session}-{uuid.uuid4().hex[:8]}",
        audio_key=await blobs.put(session, data),
        format=suffix if suffix in AUDIO_FORMATS else None,
        filename=path.name[:255],
    )
    try:
        async with contextlib.aclosing(client.arun(hub, job, queue, timeout)) as events:
            async for event in events:
                said = event.payload
                if isinstance(said, payloads.Progress):
                    _err(f"  {path}: {said.done:.0f}/{said.total:.0f} s")
                elif isinstance(said, payloads.Transcript):
                    return said.text, None
                elif isinstance(said, payloads.Failed):
                    return None, f"({said.code}): {said.message}"
    except TimeoutError:
        return None, f"(timeout): {await _timed_out(client, job.job_id, timeout)}"
    return None, "(no result): the worker ended the job without a transcript"


async def speak(settings: QueueSettings, text: str, voice: str, out: Path | None, timeout: float) -> int:
    """Speak `text` into `out` (None: stdout)."""
    async with _Clients(settings) as (client, hub, blobs):
        session = f"cli-{uuid.uuid4().hex[:10]}"
        job = SynthesisJob(session_id=session, job_id=f"{session}-speak", text=text, voice=voice)
        clips: list[tuple[SpeechClip, bytes]] = []
        try:
            async with contextlib.aclosing(client.arun(hub, job, None, timeout)) as events:
                async for event in events:
                    clip = event.payload
                    if isinstance(clip, payloads.Failed):
                        _err(f"failed ({clip.code}): {clip.message}")
                        return 1
                    if not isinstance(clip, payloads.Audio):
                        continue
                    clips.append((clip, await blobs.get(clip.audio_key)))
                    part = "" if clip.chunk == 0 and clip.sentence_done else f" (chunk {clip.chunk})"
                    _err(f"  {clip.duration_s:.2f} s: {clip.text}{part}")
        except TimeoutError:
            _err(f"failed (timeout): {await _timed_out(client, job.job_id, timeout)}")
            return 1
    audio = join_wavs([data for _, data in sorted(clips, key=lambda pair: pair[0].order)])
    seconds = sum(clip.duration_s for clip, _ in clips)
    if out is None:
        sys.stdout.buffer.write(audio)
        sys.stdout.flush()
        _err(f"wrote {seconds:.2f} s of speech to stdout")
        return 0
    try:
        out.write_bytes(audio)
    except OSError as exc:
        _err(f"cannot write {out}: {exc.strerror}")
        return 1
    _err(f"wrote {out.resolve()} ({seconds:.2f} s of speech)")
    return 0


def cancel(settings: QueueSettings, ids: list[str]) -> int:
    """Cancel each batch (every file of the record web/batch.py keeps at `PREFIX:batch:ID`) or job:
    a waiting one at once, a running transcription at the end of the piece it is on."""
    connection = settings.connect()
    client = JobClient(settings, connection)
    missing = 0
    for ident in ids:
        raw = connection.get(f"{settings.key_prefix}:batch:{ident}")
        if raw is not None:
            jobs = [f["job_id"] for f in json.loads(raw)["files"] if not f.get("error")]
        else:
            jobs = [ident]
        for job_id in jobs:
            outcome = client.stop(job_id)
            if outcome == "unknown" and raw is None:
                missing += 1
            print(f"{job_id}\t{_OUTCOMES[outcome]}", flush=True)
    connection.close()
    if missing:
        _err(f"{missing} of the ids named no batch and no job (expired, or mistyped)")
    return 1 if missing else 0


_OUTCOMES = {
    "canceled": "canceled (it was waiting: it will not run)",
    "stopping": "stopping (running: it stops at the end of its current piece)",
    "ended": "already ended",
    "unknown": "unknown (no such job, or it expired)",
}


def _probe(settings: QueueSettings) -> redis.Redis:
    """A client that fails fast, for questions asked before any work (help, checks)."""
    return redis.Redis.from_url(
        settings.redis_url,
        **settings.redis_options(),
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def announced_voices(settings: QueueSettings) -> dict[str, str]:
    """Voices the workers announced at start (name -> description); raises RedisError."""
    with _probe(settings) as connection:
        raw = connection.hgetall(voices_key(settings))
    return {k.decode(): v.decode() for k, v in sorted(raw.items())}


def voices_text() -> str:
    """What --help says about voices: those the workers announced, or why there are none."""
    try:
        settings = QueueSettings.from_env(os.environ)
        voices = announced_voices(settings)
    except SettingsError as exc:
        return f"voices: cannot read them: {exc}"
    except redis.exceptions.RedisError as exc:
        return f"voices: Redis at {settings.safe_url} does not answer ({exc}), so the workers' voices are unknown."
    if not voices:
        return f"voices: no worker has announced any at {settings.safe_url}: {START_WORKER}."
    width = max(map(len, voices))
    lines = [f"  {name:<{width}}  {about}" for name, about in voices.items()]
    return "voices the workers speak (--voice; `python -m queues voices` lists them):\n" + "\n".join(lines)


class _HelpWithVoices(argparse.Action):
    """-h/--help that also lists the voices, read from Redis only when help is asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        parser.epilog = voices_text()
        parser.print_help()
        parser.exit()


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {raw}")
    return value


def _add_timeout(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--timeout", type=_seconds, default=default, metavar="SECONDS", help="seconds to wait for each job (600)"
    )


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=raw, add_help=False)
    parser.add_argument("-h", "--help", action=_HelpWithVoices)
    _add_timeout(parser, 600.0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{transcribe,speak,voices,cancel}")
    t = commands.add_parser(
        "transcribe",
        help="transcribe audio files and folders",
        description=f"Transcribe audio files; folders are walked for {', '.join(AUDIO_FORMATS)} files.",
    )
    t.add_argument("files", nargs="+", type=Path, metavar="FILE_OR_FOLDER")
    t.add_argument(
        "--queue", choices=("realtime", "batch"), help="realtime (the default for one file) or batch (for several)"
    )
    s = commands.add_parser(
        "speak",
        help="speak text in a voice, into a WAV file",
        description=f"Speak up to {MAX_TEXT_CHARS} characters in a voice, into a WAV file. --out is required "
        "(it is checked before any work, and a file there is replaced); - writes the WAV to stdout.",
        formatter_class=raw,
        add_help=False,
    )
    s.add_argument("-h", "--help", action=_HelpWithVoices)
    s.add_argument("text")
    s.add_argument("--voice", default="max", help="a voice the workers speak (default: %(default)s)")
    s.add_argument("--out", required=True, metavar="FILE.wav", help="where to write the WAV; - for stdout")
    commands.add_parser("voices", help="list the voices the running workers speak")
    c = commands.add_parser(
        "cancel",
        help="cancel batches of /api/transcriptions, or jobs",
        description="Cancel each batch (its files) or job: a waiting one at once; a running transcription "
        "stops at the end of the piece it is on (at most 30 s of audio) and its status says canceled.",
    )
    c.add_argument("ids", nargs="+", metavar="BATCH_OR_JOB_ID")
    # Here too, so that options go after the command as well; SUPPRESS keeps a value given before it.
    for sub in (t, s):
        _add_timeout(sub, argparse.SUPPRESS)
    return parser


def check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise UsageError("there is no text to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise UsageError(
            f"the text is {len(text)} characters; one call speaks at most {MAX_TEXT_CHARS}: split it into several"
        )
    return text


def check_voice(voice: str) -> str:
    if not re.fullmatch(VOICE_PATTERN, voice):
        raise UsageError(f"--voice {voice!r} is not a voice name; `{PROG} voices` lists the voices")
    return voice


def check_out(raw: str) -> Path | None:
    """The file to write (None: stdout), once it is known to be writable."""
    if raw == "-":
        if sys.stdout.isatty():
            raise UsageError("--out - writes the WAV to stdout: pipe it (| aplay) or redirect it (> speech.wav)")
        return None
    out = Path(raw)
    if out.is_dir():
        raise UsageError(f"--out {raw} is a folder: name a file in it, like {out / 'speech.wav'}")
    if out.suffix.lower() != ".wav":
        raise UsageError(f"--out {raw}: the workers make WAV audio, so name a .wav file")
    folder = out.parent
    if not folder.is_dir():
        raise UsageError(f"--out {raw}: the folder {folder} does not exist; create it first (mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"--out {raw}: not allowed to write there")
    return out


def check_redis(settings: QueueSettings) -> None:
    try:
        settings.check_credentials()
        with _probe(settings) as connection:
            connection.ping()
    except redis.exceptions.RedisError as exc:
        raise UsageError(
            f"Redis at {settings.safe_url} does not answer ({exc}): start it (redis-server, or `make run`), "
            "or point COUNCIL_REDIS_URL at it"
        ) from None


def warn_without_workers(settings: QueueSettings, queue: str, timeout: float) -> None:
    with _probe(settings) as connection:
        if not live_workers(connection, queue):
            _err(f"no voice worker serves the {queue!r} queue yet: {START_WORKER}; waiting up to {timeout:g} s per job")


def run(args: argparse.Namespace, settings: QueueSettings) -> int:
    if args.command == "voices":
        check_redis(settings)
        voices = announced_voices(settings)
        if not voices:
            _err(f"no worker has announced any voices at {settings.safe_url}: {START_WORKER}")
            return 1
        for name, about in voices.items():
            print(f"{name}\t{about}")
        return 0
    if args.command == "cancel":
        check_redis(settings)
        return cancel(settings, args.ids)
    if args.command == "speak":
        text, voice, out = check_text(args.text), check_voice(args.voice), check_out(args.out)
        check_redis(settings)
        warn_without_workers(settings, settings.realtime_queue, args.timeout)
        return asyncio.run(speak(settings, text, voice, out, args.timeout))
    found = find_audio(args.files)
    for path in found.missing:
        _err(f"{path}: no such file or folder")
    if found.summary():
        _err(str(found.summary()))
    too_large = [p for p in found.files if p.stat().st_size > settings.blob_max_bytes]
    for path in too_large:
        _err(f"{path}: failed (audio_too_large): over the {settings.blob_max_bytes // 2**20} MiB limit per file")
    files = [p for p in found.files if p not in too_large]
    if not files:
        raise UsageError(f"no audio files to transcribe ({', '.join(AUDIO_FORMATS)})")
    name = args.queue or ("realtime" if len(files) == 1 else "batch")
    queue = settings.realtime_queue if name == "realtime" else settings.batch_queue
    check_redis(settings)
    warn_without_workers(settings, queue, args.timeout)
    return asyncio.run(transcribe(settings, files, queue, args.timeout, len(found.missing) + len(too_large)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = QueueSettings.from_env(os.environ)
        return run(args, settings)
    except (SettingsError, UsageError) as exc:
        _err(f"{PROG}: error: {exc}")
        return 2
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        _err(f"{PROG}: lost Redis while working ({exc}); what was not reported above did not finish")
        return 2
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
