"""The chat WebSocket, `/ws/chat`: turns in, the session's events out (see PROTOCOL.md).

Outbound, the connection forwards its session's event stream: replayed after the client's last
event id, then live. Inbound, an explicit little state machine: IDLE, or RECORDING between
`audio_start` and `audio_end`. A turn runs as a task; a new turn or `interrupt` cancels it.
A malformed frame gets an error frame and changes nothing else.
"""

import asyncio
import enum
import logging
import re
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from queues import Subscription
from queues.logs import log_context
from shared_schemas import MAX_AUDIO_BYTES, EventType

from . import metrics
from .audio import audio_url
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
from .turns import TurnRunner

log = logging.getLogger(__name__)
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
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
        self.runner = TurnRunner(services, session_id, services.responder)
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
        run = self.runner.run(turn_id, self.voice, hear_members=hear_members, **inputs)
        self.turn = asyncio.create_task(run, name=turn_id)
        self.turn.add_done_callback(_log_failure)

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


async def chat(ws: WebSocket) -> None:
    session_id = ws.query_params.get("session_id") or uuid.uuid4().hex
    last_event_id = ws.query_params.get("last_event_id")
    await ws.accept()
    if not SESSION_ID.match(session_id):
        await ws.send_json(error_frame("bad_session", "session_id must be 8-64 letters, digits, - or _."))
        return await ws.close(code=1008)
    if last_event_id is not None and not EVENT_ID.match(last_event_id):
        await ws.send_json(error_frame("bad_event_id", "last_event_id must be an event id like 1700000000000-0."))
        return await ws.close(code=1008)
    with log_context(session_id=session_id):
        await serve(ChatSession(ws, services(ws), session_id), last_event_id)


async def serve(session: ChatSession, last_event_id: str | None) -> None:
    s = session.services
    metrics.SESSIONS.inc()
    log.info("session connected (after %s)", last_event_id)
    try:
        async with s.hub.subscribe(session.session_id, after=last_event_id) as sub:
            hello = {
                "session_id": session.session_id,
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
