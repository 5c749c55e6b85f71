"""The chat WebSocket, `/ws/chat`: turns in, the session's events out (see PROTOCOL.md).

A connection starts a new session (the server mints its id and a resume secret) or comes back to
one of its user's with both (see sessions.py); anything else is refused before any event is read.
Outbound, the connection forwards its session's event stream: replayed after the client's last
event id, then live; a live clip of an answer also goes out as a binary frame of PCM, so the page
plays it at once, gaplessly, without fetching it. Inbound, an explicit little state machine: IDLE;
RECORDING between `audio_start` and `audio_end` (a recording uploaded whole); LISTENING between
`listen` and `listen_end` (a streamed microphone: frames go on to a worker's listener, which says
where turns end; see mic.py). A turn runs as a task; a new turn or `interrupt` cancels it, and an
interrupt that says where playback stopped makes the conversation remember only what was heard.
A malformed frame gets an error frame and changes nothing else.
"""

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import redis.exceptions
from pydantic import ValidationError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from queues import REDIS_DOWN, BlobMissing, Subscription, atrimmed, log_context
from shared_schemas import (
    MAX_AUDIO_BYTES,
    MAX_MIC_FRAME_BYTES,
    ErrorCode,
    Event,
    JobError,
    Refusal,
    new_turn_id,
    payloads,
)

from . import metrics
from .audio import audio_url, pcm_frame
from .auth import user_of
from .errors import translate
from .heard import NOTHING_HEARD, heard
from .mic import Mic
from .playback import Playback
from .protocol import (
    EVENT_ID,
    MAX_TEXT_FRAME,
    AudioEnd,
    AudioStart,
    Interrupt,
    Listen,
    ListenEnd,
    Options,
    Ping,
    Played,
    Position,
    TextTurn,
    client_frame,
    error_frame,
    event_frame,
)
from .services import Services, services
from .sessions import SESSION_ID, Sessions
from .spoken import SpokenTurns, log_failure
from .turns import TurnRunner

log = logging.getLogger(__name__)
DEFAULT_VOICE = "joe"
STOP_WAIT_S = 5.0
LATE_FRAMES_S = 2.0


class State(enum.Enum):
    IDLE = "idle"
    RECORDING = "recording"
    LISTENING = "listening"


class ChatSession:
    def __init__(self, ws: WebSocket, services: Services, session_id: str) -> None:
        self.ws = ws
        self.services = services
        self.session_id = session_id
        self.state = State.IDLE
        self.runner = TurnRunner(services, session_id, services.responder, user_of(ws))
        self.playback = Playback(services.settings.queues, services.aredis, session_id)
        self.turn: asyncio.Task[None] | None = None
        self.turn_id: str | None = None
        self.audio = bytearray()
        self.recording: AudioStart | None = None
        self.mic: Mic | None = None
        self.streams: set[str] = set()  # the microphone streams this connection opened
        self.stopped: set[str] = set()  # turns whose sound the person stopped: no more clips go out
        self.played: set[str] = set()  # turns the page has played some of
        self._freed_before: dict[str, int] = {}  # turn -> the sentence before which its clips are freed
        # The voice and hear_members of the answers that follow, as the page last chose them (with
        # a turn, `listen` or `options`): a spoken turn takes them when it starts, not the microphone.
        self.voice = DEFAULT_VOICE
        self.hear_members: bool | None = None
        self.spoken = SpokenTurns(self)  # the listener's turns: held, joined, told from our echo
        # Whether live clips also go out as binary PCM frames (the client asked: `?audio=pcm16`).
        self.pcm = ws.query_params.get("audio") == "pcm16"
        # Frames a page sent before it learned its microphone stream had ended are refused once.
        self._mic_closed_at: float | None = None
        self._refused_late = False
        self._send_lock = asyncio.Lock()
        self._ending: set[asyncio.Task[None]] = set()

    async def send(self, frame: dict[str, Any], data: bytes | None = None) -> None:
        async with self._send_lock:
            await self.ws.send_json(frame)
            if data is not None:
                await self.ws.send_bytes(data)

    # -- out: the session's events ---------------------------------------------------------------

    async def forward(self, sub: Subscription) -> None:
        """The session's events to the page. Should that fail, the connection is closed (1011): the
        page reconnects and replays from the last event it saw, where a socket left open would look
        alive and say nothing more."""
        try:
            await self._forward(sub)
        except Exception:
            log.exception("the session's events stopped: closing its connection for the page to reconnect")
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # (closed already)
                await self.ws.close(code=1011)

    async def _forward(self, sub: Subscription) -> None:
        async for event in sub:
            live, p = sub.live(event), event.payload
            if live and getattr(p, "stream_id", None) in self.streams:  # (a listener's events say which)
                self.on_listener(event)
            elif live and isinstance(p, payloads.Transcript):
                self.spoken.transcript(event)
            if event.terminal and event.job_id in self.streams:  # a stream ended: its place comes back
                await self.services.meter.streams.close(self.runner.user, event.job_id)
            url = audio_url(p.audio_key) if isinstance(p, payloads.Audio) else None
            frame, samples = event_frame(event, url), await self._clip(event) if live else None
            if samples is not None:
                frame["pcm"] = True  # its samples follow, in the next (binary) frame
            if live and isinstance(p, payloads.Audio) and p.turn_id not in self.stopped:
                # What the page is saying, whether its samples go on the socket or by their URL.
                self.spoken.echo.said(str(p.turn_id), p.index, p.text, p.duration_s)
            await self.send(frame, samples)

    async def _clip(self, event: Event) -> bytes | None:
        """A live clip's samples, for the page to play at once (not for a turn it stopped)."""
        clip = event.payload
        if not self.pcm or not isinstance(clip, payloads.Audio) or clip.turn_id in self.stopped:
            return None
        try:
            return pcm_frame(event.id, clip, await self.services.blobs.get(clip.audio_key))
        except (BlobMissing, ValueError, EOFError):
            return None  # the page fetches it by its URL, or shows it failed

    def on_listener(self, event: Event) -> None:
        """What this connection's listener said (see spoken.py), or the stream's end."""
        self.spoken.on_event(event)
        if event.terminal and self.mic is not None and event.job_id == self.mic.stream_id:
            self.mic_closed()  # listen_done, or failed: the page opens a new one

    # -- in: the client's frames -----------------------------------------------------------------

    async def receive(self) -> None:
        while True:
            await self.services.pace.wait(self.runner.user)  # one user's share of the loop (pace.py)
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.on_bytes(message["bytes"])
            elif message.get("text") is not None:
                await self.on_text(message["text"])

    async def on_text(self, text: str) -> None:
        if len(text) > MAX_TEXT_FRAME:
            return await self.reject(ErrorCode.FRAME_TOO_LARGE, f"Text frames are limited to {MAX_TEXT_FRAME} bytes.")
        try:
            frame = client_frame.validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "frame"
            return await self.reject(
                ErrorCode.BAD_FRAME, f"Could not read that frame ({where}: {first['msg']}). See PROTOCOL.md."
            )
        match frame:
            case Ping():
                await self.send({"id": None, "type": "pong"})
            case TextTurn():
                if self.state is State.RECORDING:
                    return await self.reject(
                        ErrorCode.BAD_STATE, "Finish the recording (audio_end) before sending text."
                    )
                self.start_turn(frame.voice, frame.hear_members, text=frame.text)
            case AudioStart():
                if self.state is not State.IDLE:
                    return await self.reject(ErrorCode.BAD_STATE, f"Close the {self.state.value} first; one at a time.")
                self.state, self.recording, self.audio = State.RECORDING, frame, bytearray()
            case AudioEnd():
                if self.state is not State.RECORDING or self.recording is None:
                    return await self.reject(ErrorCode.BAD_STATE, "There is no open recording; send audio_start first.")
                start, audio = self.recording, bytes(self.audio)
                self.drop_recording()
                if not audio:
                    return await self.reject(
                        ErrorCode.EMPTY_AUDIO, "The recording was empty. Hold the button while you speak."
                    )
                self.start_turn(start.voice, start.hear_members, audio=audio, audio_format=start.format)
            case Listen():
                await self.open_mic(frame)
            case Options():
                self.choose(frame.voice, frame.hear_members)
            case ListenEnd():
                if self.state is not State.LISTENING or self.mic is None:
                    return await self.reject(ErrorCode.BAD_STATE, "The microphone is not open; send listen first.")
                mic, self.mic = self.mic, None
                self.mic_closed()
                await mic.close()
            case Played():
                self.played.add(frame.turn_id)
                self.spoken.echo.played(frame.turn_id, frame.done)
                await self.playback.save(frame)
                # Clips heard are freed (off the user's share of storage: web/meter.py), once a
                # sentence is behind the page (it reports each chunk: the rest would free nothing).
                if frame.done or frame.index > self._freed_before.get(frame.turn_id, 0):
                    self._freed_before[frame.turn_id] = frame.index
                    before = None if frame.done else frame.index
                    await self.services.meter.heard(self.runner.user, self.session_id, frame.turn_id, before)
            case Interrupt():
                await self.interrupt(frame.heard)

    async def on_bytes(self, data: bytes) -> None:
        if self.state is State.LISTENING and self.mic is not None:
            if len(data) % 2 or len(data) > MAX_MIC_FRAME_BYTES:
                return await self.reject(
                    ErrorCode.BAD_FRAME,
                    f"Microphone frames are PCM16 (an even number of bytes), at most {MAX_MIC_FRAME_BYTES} bytes.",
                )
            if (failure := await self.mic.feed(data)) is not None:
                await self.mic_failed(failure)
            return
        if self.state is not State.RECORDING:
            if self._mic_closed_at is not None and time.monotonic() - self._mic_closed_at < LATE_FRAMES_S:
                if self._refused_late:
                    return None  # still on their way after the stream ended: said once
                self._refused_late = True
            return await self.reject(
                ErrorCode.BAD_STATE,
                "Binary frames are audio: send audio_start (a recording) or listen (a microphone) first.",
            )
        if len(self.audio) + len(data) > MAX_AUDIO_BYTES:
            self.drop_recording()
            return await self.reject(
                ErrorCode.AUDIO_TOO_LARGE, f"A spoken turn is limited to {MAX_AUDIO_BYTES // 2**20} MiB."
            )
        if (over := self.services.recordings.take(len(data), self.runner.user)) is not None:
            self.drop_recording()
            return await self.reject(*over)
        self.audio.extend(data)

    def drop_recording(self) -> None:
        """The open recording is over (ended, refused or abandoned): its bytes are let go."""
        self.services.recordings.give_back(len(self.audio), self.runner.user)
        self.state, self.recording, self.audio = State.IDLE, None, bytearray()

    # -- the microphone --------------------------------------------------------------------------

    async def open_mic(self, frame: Listen) -> None:
        if self.state is not State.IDLE:
            return await self.reject(ErrorCode.BAD_STATE, f"Close the {self.state.value} first; one at a time.")
        mic = Mic(self.services, self.session_id, self.runner.user, frame.mode)
        try:
            await mic.open()
        except Refusal as exc:  # a budget, the user's queue limit or their microphones' cap
            return await self.reject(exc.code, exc.message)
        self.streams.add(mic.stream_id)
        self.state, self.mic = State.LISTENING, mic
        self.choose(frame.voice, frame.hear_members)
        await self.send({"id": None, "type": "mic", "stream_id": mic.stream_id, "mode": frame.mode})

    def mic_closed(self) -> None:
        self.state, self.mic = State.IDLE, None
        self._mic_closed_at, self._refused_late = time.monotonic(), False

    async def mic_failed(self, error: JobError) -> None:
        mic = self.mic
        self.mic_closed()
        if mic is not None:
            level = logging.WARNING if error.code == ErrorCode.WORKER_LOST else logging.INFO
            log.log(level, "microphone stream %s failed: %s (%s)", mic.stream_id, error.message, error.code)
            await mic.fail(error)

    async def hang_up(self) -> None:
        """The connection dropped: an open recording or microphone is abandoned (what was under way too)."""
        self.drop_recording()
        if self.mic is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await self.mic.close(gone=True)
            self.mic = None

    # -- turns -----------------------------------------------------------------------------------

    def choose(self, voice: str | None, hear_members: bool | None) -> None:
        """What the page chose for the answers that follow (None: unchanged)."""
        self.voice = voice or self.voice
        if hear_members is not None:
            self.hear_members = hear_members

    def start_turn(
        self, voice: str | None, hear_members: bool | None, turn_id: str | None = None, **inputs: Any
    ) -> None:
        self.cancel_turn()
        self.choose(voice, hear_members)
        turn_id = turn_id or new_turn_id()
        self.turn_id = turn_id
        # The turn's coroutine is made inside its task: a task cancelled before it starts (a quick
        # new turn or interrupt) would leave a coroutine made here never awaited.
        run = functools.partial(self.runner.run, turn_id, self.voice, hear_members=self.hear_members, **inputs)
        self.turn = asyncio.create_task(self.run_turn(run), name=turn_id)
        self.turn.add_done_callback(log_failure)

    async def run_turn(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a turn; when Redis is away, say so with an error frame (see errors.translate)."""
        try:
            await Sessions(self.services.settings.queues, self.services.aredis).touch(self.session_id)
            await run()
        except redis.exceptions.RedisError as exc:  # away (queue_unavailable), or full (storage_full)
            error = translate(exc)
            if error is None:
                raise
            log.warning("turn refused: %s", exc)
            await self.send(error_frame(error.code, error.message))

    def cancel_turn(self) -> asyncio.Task[None] | None:
        turn, self.turn = self.turn, None
        if turn is not None and not turn.done():
            turn.cancel()
            turn.add_done_callback(self._ended_unstarted)
            return turn
        return None

    def _ended_unstarted(self, task: asyncio.Task[None]) -> None:
        """A listener's turn cancelled before its task ran (its next event came at once) still ends
        with `turn_cancelled`, as every turn whose `turn_started` was published ends."""
        turn_id = task.get_name()
        if turn_id in self.spoken.heard and turn_id not in self.runner.began:
            ending = asyncio.create_task(self.runner.cancelled(turn_id), name=f"{turn_id}-ended")
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            ending.add_done_callback(log_failure)

    async def interrupt(self, where: Position | None) -> None:
        """Stop: the turn's queued speech is cancelled, no more of its clips go out, and when the
        page says where its sound stopped (or said so in its last `played`), the conversation
        keeps what was heard."""
        if where is None:  # a client that did not say: its last report, if it was about this turn
            last = await self.playback.last()
            if last is not None and last.turn_id == self.turn_id and not last.done:
                where = Position(**last.model_dump(exclude={"type", "done"}))
        stopped = where.turn_id if where is not None else self.turn_id
        if stopped is not None:
            self.stopped.add(stopped)
            self.spoken.echo.stopped(stopped)
        # The page stopping an earlier answer the person spoke over (`echo_checked`) leaves the turn
        # they started meanwhile running; any other stop ends the turn under way.
        spoken_over = where is not None and where.turn_id != self.turn_id and stopped in self.spoken.spoken_over
        running = None if spoken_over else self.cancel_turn()
        if running is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), STOP_WAIT_S)
        if where is not None and where.turn_id == stopped:
            await self.remember_heard(where)
        if stopped is not None:  # its clips will not be played: freed, off the user's share (meter.py)
            await self.services.meter.heard(self.runner.user, self.session_id, stopped, None)
            # Its playback is over: a page that comes back (a reload) does not speak the rest of it.
            at = where if where is not None and where.turn_id == stopped else Position(turn_id=stopped, index=0)
            await self.playback.save(Played(type="played", **at.model_dump(), done=True))

    async def remember_heard(self, where: Position) -> None:
        found = await heard(self.services.aredis, self.services.settings.queues, self.session_id, where)
        if found is None or found.member is None or found.whole:
            return
        await self.services.responder.heard(self.session_id, where.turn_id, found.question, found.text or NOTHING_HEARD)
        cut = payloads.Message(member=found.member, text=found.text, cut=True, heard_s=found.heard_s)
        await self.runner.publish(where.turn_id, cut)

    async def reject(self, code: str, message: str) -> None:
        log.info("frame refused: %s (%s)", message, code)  # the client's mistake or a limit: no trace
        metrics.BAD_FRAMES.labels(code).inc()
        await self.send(error_frame(code, message))


TRIMMED = (
    "The oldest part of this conversation is no longer kept (the server keeps its latest events): what "
    "you see starts at the first event still there."
)
FORBIDDEN = (
    "This session does not exist, has expired, is not yours, or its resume secret is wrong: "
    "connect without session_id to start a new one."
)


async def chat(ws: WebSocket) -> None:
    session_id = ws.query_params.get("session_id") or None
    resume = ws.query_params.get("resume") or ""
    last_event_id = ws.query_params.get("last_event_id")
    await ws.accept()
    if session_id is not None and not SESSION_ID.match(session_id):
        await ws.send_json(error_frame(ErrorCode.BAD_SESSION, "session_id must be 8-64 letters, digits, - or _."))
        return await ws.close(code=1008)
    if last_event_id is not None and not EVENT_ID.match(last_event_id):
        await ws.send_json(
            error_frame(ErrorCode.BAD_EVENT_ID, "last_event_id must be an event id like 1700000000000-0.")
        )
        return await ws.close(code=1008)
    s = services(ws)
    sessions, user = Sessions(s.settings.queues, s.aredis), user_of(ws)
    secret: str | None = None
    if session_id is None:
        new = await sessions.create(user)
        session_id, secret = new.session_id, new.resume
    elif not await sessions.resume(session_id, resume, user):
        log.warning("session %s refused to user %s", session_id, user)
        await ws.send_json(error_frame(ErrorCode.FORBIDDEN_SESSION, FORBIDDEN))
        return await ws.close(code=1008)
    with log_context(session_id=session_id):
        await serve(ChatSession(ws, s, session_id), last_event_id, secret)


async def serve(session: ChatSession, last_event_id: str | None, resume: str | None = None) -> None:
    """Serve a session: `resume` is its secret, told in the hello of a session just made."""
    s = session.services
    metrics.SESSIONS.inc()
    log.info("session connected (after %s)", last_event_id)
    try:
        async with s.hub.subscribe(session.session_id, after=last_event_id) as sub:
            played = await session.playback.last()
            hello = {
                "session_id": session.session_id,
                **({"resume": resume} if resume else {}),
                "voices": await s.voices(),
                "llm": await s.llm_status(),
                "resumed_after": last_event_id,
                "played": played.model_dump(exclude={"type"}) if played else None,
            }
            await session.send({"id": None, "type": "session", **hello})
            if last_event_id is not None and (
                kept := await atrimmed(s.aredis, s.settings.queues, session.session_id, last_event_id)
            ):
                await session.send({"id": None, "type": "events_trimmed", "kept_from": kept, "message": TRIMMED})
            forwarder = asyncio.create_task(session.forward(sub))
            try:
                await session.receive()
            finally:
                forwarder.cancel()
                await asyncio.shield(session.hang_up())  # even when the app cancels this task
    except WebSocketDisconnect:
        pass
    finally:
        metrics.SESSIONS.dec()
        log.info("session disconnected")
        # A running turn goes on without the socket: its events wait in the stream for a reconnect.


routes = [WebSocketRoute("/ws/chat", chat)]
