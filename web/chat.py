"""The chat WebSocket, `/ws/chat`: turns in, the session's events out (see PROTOCOL.md).

A connection starts a new session (the server mints its id and a resume secret) or comes back to
one of its user's with both (see sessions.py); anything else is refused before any event is read.
Outbound, the connection forwards its session's event stream: replayed after the client's last
event id, then live. Inbound, an explicit little state machine: IDLE, or RECORDING between
`audio_start` and `audio_end`. A turn runs as a task; a new turn or `interrupt` cancels it.
A malformed frame gets an error frame and changes nothing else.
"""

import asyncio
import enum
import functools
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from queues import Subscription
from queues.logs import log_context
from shared_schemas import MAX_AUDIO_BYTES, EventType

from . import metrics
from .audio import audio_url
from .auth import user_of
from .errors import REDIS_UNAVAILABLE, translate
from .protocol import (
    EVENT_ID,
    MAX_TEXT_FRAME,
    AudioEnd,
    AudioStart,
    Interrupt,
    Ping,
    TextTurn,
    client_frame,
    error_frame,
    event_frame,
)
from .services import Services, services
from .sessions import SESSION_ID, Sessions
from .turns import TurnRunner

log = logging.getLogger(__name__)
DEFAULT_VOICE = "joe"


class State(enum.Enum):
    IDLE = "idle"
    RECORDING = "recording"


class ChatSession:
    def __init__(self, ws: WebSocket, services: Services, session_id: str) -> None:
        self.ws = ws
        self.services = services
        self.session_id = session_id
        self.state = State.IDLE
        self.runner = TurnRunner(services, session_id, services.responder, user_of(ws))
        self.turn: asyncio.Task[None] | None = None
        self.audio = bytearray()
        self.recording: AudioStart | None = None
        self.voice = DEFAULT_VOICE
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(frame)

    async def forward(self, sub: Subscription) -> None:
        async for event in sub:
            url = audio_url(str(event.payload["audio_key"])) if event.type is EventType.AUDIO else None
            await self.send(event_frame(event, url))

    async def receive(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.on_bytes(message["bytes"])
            elif message.get("text") is not None:
                await self.on_text(message["text"])

    async def on_text(self, text: str) -> None:
        if len(text) > MAX_TEXT_FRAME:
            return await self.reject("frame_too_large", f"Text frames are limited to {MAX_TEXT_FRAME} bytes.")
        try:
            frame = client_frame.validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "frame"
            return await self.reject(
                "bad_frame", f"Could not read that frame ({where}: {first['msg']}). See PROTOCOL.md."
            )
        match frame:
            case Ping():
                await self.send({"id": None, "type": "pong"})
            case TextTurn():
                if self.state is State.RECORDING:
                    return await self.reject("bad_state", "Finish the recording (audio_end) before sending text.")
                self.start_turn(frame.voice, frame.hear_members, text=frame.text)
            case AudioStart():
                if self.state is State.RECORDING:
                    return await self.reject("bad_state", "A recording is already open; send audio_end first.")
                self.state, self.recording, self.audio = State.RECORDING, frame, bytearray()
            case AudioEnd():
                if self.state is not State.RECORDING or self.recording is None:
                    return await self.reject("bad_state", "There is no open recording; send audio_start first.")
                start, audio = self.recording, bytes(self.audio)
                self.state, self.recording, self.audio = State.IDLE, None, bytearray()
                if not audio:
                    return await self.reject("empty_audio", "The recording was empty. Hold the button while you speak.")
                self.start_turn(start.voice, start.hear_members, audio=audio, audio_format=start.format)
            case Interrupt():
                self.cancel_turn()

    async def on_bytes(self, data: bytes) -> None:
        if self.state is not State.RECORDING:
            return await self.reject("bad_state", "Binary frames are audio; send audio_start first.")
        if len(self.audio) + len(data) > MAX_AUDIO_BYTES:
            self.state, self.recording, self.audio = State.IDLE, None, bytearray()
            return await self.reject("audio_too_large", f"A spoken turn is limited to {MAX_AUDIO_BYTES // 2**20} MiB.")
        self.audio.extend(data)

    def start_turn(self, voice: str | None, hear_members: bool | None, **inputs: Any) -> None:
        self.cancel_turn()
        self.voice = voice or self.voice
        turn_id = f"turn-{uuid.uuid4().hex[:12]}"
        # The turn's coroutine is made inside its task: a task cancelled before it starts (a quick
        # new turn or interrupt) would leave a coroutine made here never awaited.
        run = functools.partial(self.runner.run, turn_id, self.voice, hear_members=hear_members, **inputs)
        self.turn = asyncio.create_task(self.run_turn(run), name=turn_id)
        self.turn.add_done_callback(_log_failure)

    async def run_turn(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a turn; when Redis is away, say so with an error frame (see errors.translate)."""
        try:
            await Sessions(self.services.settings.queues, self.services.aredis).touch(self.session_id)
            await run()
        except REDIS_UNAVAILABLE as exc:
            error = translate(exc)
            assert error is not None
            log.warning("turn refused: %s", exc)
            await self.send(error_frame(error.code, error.message))

    def cancel_turn(self) -> None:
        if self.turn is not None and not self.turn.done():
            self.turn.cancel()
        self.turn = None

    async def reject(self, code: str, message: str) -> None:
        metrics.BAD_FRAMES.labels(code).inc()
        await self.send(error_frame(code, message))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("turn %s failed", task.get_name(), exc_info=task.exception())


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
        await ws.send_json(error_frame("bad_session", "session_id must be 8-64 letters, digits, - or _."))
        return await ws.close(code=1008)
    if last_event_id is not None and not EVENT_ID.match(last_event_id):
        await ws.send_json(error_frame("bad_event_id", "last_event_id must be an event id like 1700000000000-0."))
        return await ws.close(code=1008)
    s = services(ws)
    sessions, user = Sessions(s.settings.queues, s.aredis), user_of(ws)
    secret: str | None = None
    if session_id is None:
        new = await sessions.create(user)
        session_id, secret = new.session_id, new.resume
    elif not await sessions.resume(session_id, resume, user):
        log.warning("session %s refused to user %s", session_id, user)
        await ws.send_json(error_frame("forbidden_session", FORBIDDEN))
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
            hello = {
                "session_id": session.session_id,
                **({"resume": resume} if resume else {}),
                "voices": await s.voices(),
                "llm": await s.llm_status(),
                "resumed_after": last_event_id,
            }
            await session.send({"id": None, "type": "session", **hello})
            forwarder = asyncio.create_task(session.forward(sub))
            try:
                await session.receive()
            finally:
                forwarder.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        metrics.SESSIONS.dec()
        log.info("session disconnected")
        # A running turn goes on without the socket: its events wait in the stream for a reconnect.


routes = [WebSocketRoute("/ws/chat", chat)]
