"""Streamed voice, measured where the person is: clients stream recorded questions over the chat
WebSocket in real time, 20 ms frames as the page sends them, hands-free, and time each turn from
the last voiced frame they sent to the first answer audio they received (binary PCM on the
socket), with its parts: the end of speech to the turn decided (`turn_started` received), the
turn decided to its final transcript, the turn decided to the first audio. The app runs in this
process (uvicorn, a scripted council that answers at once, espeak voices first); the worker and
Redis are the benchmark's own. Also: the CPU a silent open microphone costs the worker.
"""

import asyncio
import io
import json
import statistics
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uvicorn
import websockets

from queues import QueueSettings
from shared_schemas import SentenceBuffer, transcript_job_id
from tests.speech import TWO_CITIES
from tests.speech.score import score
from web.app import create_app
from web.settings import AppSettings
from web.turns import FIRST_CLAUSE_WORDS

from .procs import percentile
from .turns import responder_factory

ROOT = Path(__file__).resolve().parent.parent
FRAME_S = 0.02
FRAME_BYTES = 640
PAUSE_S = 1.6  # between an answer heard to its end and the next question
# Short factual questions: the router sends them to one fast member, as a voice assistant would.
QUESTIONS = (
    "What is the capital of France?",
    "What time does the library open on Sundays?",
    "How far is it from Paris to Berlin?",
    "Who wrote the novel Pride and Prejudice?",
)


def speak(text: str, worker_python: str, folder: Path) -> bytes:
    """16 kHz PCM16 of `text` in Piper's voice, trimmed to its voiced part."""
    path = folder / f"q-{abs(hash(text))}.wav"
    subprocess.run(
        [worker_python, "-m", "voice_worker.say", text, "--out", str(path), "--rate", "16000"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with wave.open(io.BytesIO(path.read_bytes())) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    voiced = np.nonzero(np.abs(samples) > 300)[0]
    return samples[voiced[0] : voiced[-1] + 1].tobytes()


@dataclass
class Turn:
    speech_end: float  # perf_counter() when the frame holding the last voiced sample was sent
    decided: float | None = None
    transcript: float | None = None
    routed: float | None = None  # the council's `routed` step: the router decided
    first_token: float | None = None  # the answer's first `token` frame
    first_piece: float | None = None  # its first piece to speak written (cut as the app cuts it)
    first_sentence: float | None = None  # its first whole sentence written
    confirmed: float | None = None  # `turn_confirmed`: a tentative turn's sound may go out
    first_audio: float | None = None
    confirm_ms: int = 0  # the hold `turn_started` announced (0: the turn stood at once)
    text: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    turn_id: str | None = None
    audio_s: float = 0.0  # the answer's length, from its `audio` events
    last_clip: tuple[int, int] = (0, 0)  # (index, chunk) of its last clip
    sentences: dict[str, SentenceBuffer] = field(default_factory=dict)  # each member's answer so far
    pieces: dict[str, SentenceBuffer] = field(default_factory=dict)  # the same, cut as the app cuts it


class Speaker:
    """One person, hands-free: streams questions and silence in real time, notes what comes back."""

    def __init__(self, url: str, turn_limit_s: float = 60) -> None:
        self.url = url
        self.turn_limit_s = turn_limit_s  # from the end of speech to the answer played to its end
        self.turns: list[Turn] = []
        self.stream_id: str | None = None
        self._listening = asyncio.Event()
        self.max_lag_ms = 0  # the furthest behind real time its listener said it read (`lag_ms`)
        self.failures: list[dict] = []  # its stream's `failed` events (a listener taken for dead)
        self._sent = 0
        self._start = 0.0

    async def run(self, questions: list[bytes], pause_s: float) -> list[Turn]:
        async with websockets.connect(self.url, max_size=None) as ws:
            json.loads(await ws.recv())  # the session
            await ws.send(json.dumps({"type": "listen", "mode": "hands_free", "voice": "max"}))
            reader = asyncio.create_task(self._read(ws))
            self._start = time.perf_counter()
            await self._send(ws, bytes(FRAME_BYTES * 10))
            await asyncio.wait_for(self._listening.wait(), 30)
            for question in questions:
                turn = Turn(speech_end=0.0)
                self.turns.append(turn)
                await self._send(ws, bytes(FRAME_BYTES * 25) + question, mark=turn)
                # Silence (as a page sends it) until the answer's turn is over and its sound has
                # played to its end, which the client says as a page does (`played`, done: the
                # server then knows its own voice no longer sounds), then a pause.
                while not turn.done.is_set() or time.perf_counter() < (turn.first_audio or 0) + turn.audio_s:
                    await self._send(ws, bytes(FRAME_BYTES * 5))
                    if time.perf_counter() - turn.speech_end > self.turn_limit_s:
                        raise RuntimeError(f"a turn took over {self.turn_limit_s:g} s")
                if turn.turn_id is not None:
                    index, chunk = turn.last_clip
                    played = {"type": "played", "turn_id": turn.turn_id, "index": index, "chunk": chunk, "done": True}
                    await ws.send(json.dumps(played))
                await self._send(ws, bytes(int(FRAME_BYTES * pause_s / FRAME_S)))
            await ws.send(json.dumps({"type": "listen_end"}))
            reader.cancel()
        return self.turns

    async def _send(self, ws, pcm: bytes, mark: Turn | None = None) -> None:
        """In real time: each 20 ms frame when its moment comes."""
        for i in range(0, len(pcm), FRAME_BYTES):
            due = self._start + self._sent * FRAME_S
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            await ws.send(pcm[i : i + FRAME_BYTES])
            self._sent += 1
        if mark is not None:
            mark.speech_end = time.perf_counter()

    async def _read(self, ws) -> None:
        current: Turn | None = None
        turn_id = None
        async for message in ws:
            now = time.perf_counter()
            if isinstance(message, bytes):
                if current is not None and current.first_audio is None:
                    current.first_audio = now
                continue
            frame = json.loads(message)
            kind, payload = frame.get("type"), frame.get("payload") or {}
            if payload.get("stream_id", frame.get("job_id")) == self.stream_id and self.stream_id is not None:
                self.max_lag_ms = max(self.max_lag_ms, payload.get("lag_ms", 0), payload.get("max_lag_ms", 0))
                if kind == "failed":
                    self.failures.append(payload)
            if kind == "mic":
                self.stream_id = frame["stream_id"]
            elif kind == "listening":
                self._listening.set()
            elif kind == "turn_started" and payload.get("stream_id") == self.stream_id and self.turns:
                current, turn_id = self.turns[-1], frame["job_id"]
                current.decided, current.turn_id, current.audio_s = now, turn_id, 0.0
                current.confirm_ms = int(payload.get("confirm_ms") or 0)
                current.first_token = current.first_sentence = current.first_piece = None
                current.confirmed = current.routed = None
                current.sentences, current.pieces = {}, {}
            elif kind == "routed" and current is not None and frame.get("job_id") == turn_id:
                current.routed = current.routed or now
            elif kind == "turn_confirmed" and current is not None and payload.get("turn_id") == turn_id:
                current.confirmed = current.confirmed or now
            elif kind == "token" and current is not None and frame.get("job_id") == turn_id:
                current.first_token = current.first_token or now
                member, text = str(payload.get("member")), str(payload.get("text", ""))
                if current.sentences.setdefault(member, SentenceBuffer()).feed(text):
                    current.first_sentence = current.first_sentence or now
                cut = current.pieces.setdefault(member, SentenceBuffer(first_clause=FIRST_CLAUSE_WORDS))
                if cut.feed(text):
                    current.first_piece = current.first_piece or now
            elif kind == "audio" and current is not None and payload.get("turn_id") == turn_id:
                current.audio_s += float(payload.get("duration_s", 0.0))
                current.last_clip = max(current.last_clip, (int(payload.get("index", 0)), int(payload.get("chunk", 0))))
            elif kind == "transcript" and current is not None and frame["job_id"] == transcript_job_id(turn_id):
                current.transcript, current.text = now, payload.get("text", "")
            elif kind == "turn_done" and current is not None and frame["job_id"] == turn_id:
                current.done.set()
                current = None


def pcm16k(path: Path) -> bytes:
    """A recording as 16 kHz mono PCM16 (ffmpeg: the app's interpreter has no resampler)."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar", "16000"]
    return subprocess.run([*command, "-f", "s16le", "-"], check=True, capture_output=True).stdout


async def read_aloud(url: str, pcm: bytes, lead_s: float = 0.5, tail_s: float = 4.0) -> tuple[list[dict], float]:
    """Stream a recording in real time, hands-free; every frame of the stream's events that came
    back, and where the recording starts in the stream's audio time."""
    events: list[dict] = []
    stream_id: list[str] = []
    listening = asyncio.Event()

    async def read(ws) -> None:
        async for message in ws:
            if isinstance(message, bytes):
                continue
            frame = json.loads(message)
            if frame.get("type") == "mic":
                stream_id.append(frame["stream_id"])
            elif frame.get("type") == "listening":
                listening.set()
            if "payload" in frame:
                events.append(frame)

    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())  # the session
        await ws.send(json.dumps({"type": "listen", "mode": "hands_free", "voice": "max"}))
        reader = asyncio.create_task(read(ws))
        sent = 0
        start = time.perf_counter()

        async def send(chunk: bytes) -> None:
            nonlocal sent
            for i in range(0, len(chunk), FRAME_BYTES):
                await asyncio.sleep(max(0.0, start + sent * FRAME_S - time.perf_counter()))
                await ws.send(chunk[i : i + FRAME_BYTES])
                sent += 1

        await send(bytes(FRAME_BYTES * 10))
        await asyncio.wait_for(listening.wait(), 30)
        start, before = time.perf_counter() - sent * FRAME_S, sent
        await send(bytes(int(FRAME_BYTES * lead_s / FRAME_S)) + pcm + bytes(int(FRAME_BYTES * tail_s / FRAME_S)))
        await ws.send(json.dumps({"type": "listen_end"}))
        deadline = time.monotonic() + 30
        while not any(e.get("type") == "listen_done" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        reader.cancel()
    mine = [e for e in events if not stream_id or (e.get("payload") or {}).get("stream_id") in (None, stream_id[0])]
    return mine, (before * FRAME_S) + lead_s


async def bench_reading(url: str) -> dict:
    pcm = pcm16k(TWO_CITIES.path())
    events, offset_s = await read_aloud(url, pcm)
    result = score(TWO_CITIES, events, offset_s=offset_s)
    return {**result.figures(), "transcripts": result.transcripts}


def serve(
    settings: QueueSettings, app_settings: AppSettings | None = None, scripted: bool = True
) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The app in a thread of this process; by default with a scripted council that answers at once
    (`scripted=False`: the council the settings name, e.g. the default members on the built-in model)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Its speakers are one anonymous user standing in for several: no per-user cap on microphones.
    app_settings = app_settings or AppSettings(queues=settings, max_streams_per_user=0)
    app = create_app(app_settings, make_responder=responder_factory(("espeak", "piper")) if scripted else None)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", ws_max_size=2**20))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    return f"ws://127.0.0.1:{port}/ws/chat?audio=pcm16", server, thread


def figures(turns: list[Turn]) -> dict[str, float]:
    ok = [t for t in turns if t.decided and t.transcript and t.first_audio]
    if len(ok) < len(turns):
        raise RuntimeError(f"{len(turns) - len(ok)} of {len(turns)} turns missed a part")
    ms = lambda a, b: [(getattr(t, b) - getattr(t, a)) * 1000 for t in ok]  # noqa: E731
    response = ms("speech_end", "first_audio")
    return {
        "voice_response_ms": statistics.median(response),
        "voice_response_p90_ms": percentile(response, 90),
        "endpoint_ms": statistics.median(ms("speech_end", "decided")),
        "stt_final_ms": statistics.median(ms("decided", "transcript")),
        "first_audio_after_turn_ms": statistics.median(ms("decided", "first_audio")),
        "turns": len(ok),
    }


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children that are still running (the supervisor's worker)."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


async def silent_cpu(url: str, worker_pid: int, sessions: int, seconds: float) -> dict[str, float]:
    """Worker CPU, in % of one core, for each silent open microphone (less the idle worker's). The
    microphones hear a quiet room (white noise at -55 dBFS), not digital zeros, so the VAD runs."""
    rng = np.random.default_rng(3)
    room = (rng.standard_normal(16000 * 2) * 32768 * 10 ** (-55 / 20)).astype("<i2").tobytes()
    before = cpu_s(worker_pid)
    await asyncio.sleep(seconds)
    idle = (cpu_s(worker_pid) - before) / seconds

    async def silent() -> None:
        async with websockets.connect(url) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "listen"}))
            start, sent = time.perf_counter(), 0
            while time.perf_counter() - start < seconds + 3:
                await asyncio.sleep(max(0.0, start + sent * FRAME_S - time.perf_counter()))
                at = (sent * FRAME_BYTES) % (len(room) - FRAME_BYTES)
                await ws.send(room[at : at + FRAME_BYTES])
                sent += 1
            await ws.send(json.dumps({"type": "listen_end"}))

    tasks = [asyncio.create_task(silent()) for _ in range(sessions)]
    await asyncio.sleep(3)  # claimed and listening
    before = cpu_s(worker_pid)
    await asyncio.sleep(seconds)
    busy = (cpu_s(worker_pid) - before) / seconds
    await asyncio.gather(*tasks)
    return {"idle_pct": idle * 100, "per_silent_mic_pct": max(0.0, busy - idle) / sessions * 100}


async def bench_stream(settings: QueueSettings, worker_python: str, worker_pid: int, turns: int, folder: Path) -> dict:
    questions = [speak(q, worker_python, folder) for q in QUESTIONS]
    url, server, thread = serve(settings)
    try:
        one = Speaker(url)
        # Each question after the last answer was heard, and the echo window (web/echo.py) after it.
        await one.run([questions[0]], PAUSE_S)  # warm up
        one = Speaker(url)
        solo = figures(await one.run([questions[i % len(questions)] for i in range(turns)], PAUSE_S))
        together = {}
        for n in (2, 4):
            speakers = [Speaker(url) for _ in range(n)]
            per = max(3, turns // n)
            runs = [
                s.run([questions[(i + k) % len(questions)] for i in range(per)], PAUSE_S)
                for k, s in enumerate(speakers)
            ]
            together[n] = figures([t for got in await asyncio.gather(*runs) for t in got])
        cpu = await silent_cpu(url, worker_pid, sessions=4, seconds=10)
        heard = [t.text for t in one.turns]
        reading = await bench_reading(url)
    finally:
        server.should_exit = True
        thread.join(10)
    return {"solo": solo, "together": together, "cpu": cpu, "heard": heard, "reading": reading}
