"""`python -m queues`: talk to the voice workers from a terminal, without the web app.

python -m queues transcribe meeting.mp3 memo.webm
python -m queues speak "Hello there. How are you?" --voice max --out hello.wav
"""

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path

from shared_schemas import AUDIO_FORMATS, EventType, SpeechClip, SynthesisJob, TranscriptionJob

from . import AsyncBlobStore, EventHub, JobClient, QueueSettings, SettingsError
from .wavs import join_wavs


async def transcribe(settings: QueueSettings, files: list[Path], queue: str, timeout: float) -> int:
    failures = 0
    async with _clients(settings) as (client, hub, blobs):
        session = f"cli-{uuid.uuid4().hex[:10]}"
        for path in files:
            suffix = path.suffix.lower().lstrip(".")
            key = await blobs.put(session, path.read_bytes())
            job = TranscriptionJob(
                session_id=session,
                job_id=f"{session}-{uuid.uuid4().hex[:8]}",
                audio_key=key,
                format=suffix if suffix in AUDIO_FORMATS else None,
                filename=path.name[:255],
            )
            async for event in client.arun(hub, job, queue, timeout):
                if event.type is EventType.PROGRESS:
                    print(f"  {path.name}: {event.payload['done']:.0f}/{event.payload['total']:.0f} s", file=sys.stderr)
                elif event.type is EventType.TRANSCRIPT:
                    print(f"{path.name}: {event.payload['text']}")
                elif event.type is EventType.FAILED:
                    failures += 1
                    print(f"{path.name}: failed ({event.payload['code']}): {event.payload['message']}", file=sys.stderr)
    return 1 if failures else 0


async def speak(settings: QueueSettings, text: str, voice: str, out: Path, timeout: float) -> int:
    async with _clients(settings) as (client, hub, blobs):
        session = f"cli-{uuid.uuid4().hex[:10]}"
        job = SynthesisJob(session_id=session, job_id=f"{session}-speak", text=text, voice=voice)
        clips: list[tuple[SpeechClip, bytes]] = []
        async for event in client.arun(hub, job, None, timeout):
            if event.type is EventType.FAILED:
                print(f"failed ({event.payload['code']}): {event.payload['message']}", file=sys.stderr)
                return 1
            clip = SpeechClip.model_validate(event.payload)
            clips.append((clip, await blobs.get(clip.audio_key)))
            part = "" if clip.chunk == 0 and clip.sentence_done else f" (chunk {clip.chunk})"
            print(f"  {clip.duration_s:.2f} s: {clip.text}{part}", file=sys.stderr)
    out.write_bytes(join_wavs([data for _, data in sorted(clips, key=lambda pair: pair[0].order)]))
    print(f"wrote {out}")
    return 0


class _clients:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m queues", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait per job")
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("transcribe", help="transcribe audio files (wav, flac, ogg, mp3, webm)")
    t.add_argument("files", nargs="+", type=Path)
    t.add_argument("--queue", default=None, help="realtime (default for one file) or batch")
    s = commands.add_parser("speak", help="speak text in a voice, into a WAV file")
    s.add_argument("text")
    s.add_argument("--voice", default="max")
    s.add_argument("--out", type=Path, default=Path("speech.wav"))
    args = parser.parse_args(argv)
    try:
        settings = QueueSettings.from_env(os.environ)
        settings.check_credentials()
    except SettingsError as exc:
        parser.error(str(exc))
    if args.command == "transcribe":
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)}")
        queue = args.queue or (settings.realtime_queue if len(args.files) == 1 else settings.batch_queue)
        return asyncio.run(transcribe(settings, args.files, queue, args.timeout))
    return asyncio.run(speak(settings, args.text, args.voice, args.out, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
