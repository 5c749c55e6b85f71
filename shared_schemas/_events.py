"""The event envelope: everything a worker tells a session comes back in one of these."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._limits import SCHEMA_VERSION


class EventType(StrEnum):
    # From workers, about one job.
    PROGRESS = "progress"
    TRANSCRIPT = "transcript"
    AUDIO = "audio"
    FAILED = "failed"
    PONG = "pong"
    # From workers, about a streamed microphone (`job_id` is the stream's id; see ListenJob).
    LISTENING = "listening"  # a worker has the stream and listens
    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"
    TRANSCRIPT_PARTIAL = "transcript_partial"  # interim words of the turn being spoken
    TURN_CONFIRMED = "turn_confirmed"  # a tentative spoken turn had its hold of silence: answer aloud
    LISTEN_DONE = "listen_done"  # the stream is over: closed, abandoned, or its worker stopped
    # From the app, about one turn of the conversation (`job_id` is the turn id).
    TURN_STARTED = "turn_started"
    JOINED = "joined"  # a spoken turn answers the one it interrupted too: the whole question
    ROUTED = "routed"  # the router's decision: fast single answer, or the whole council
    MEMBER_STARTED = "member_started"
    MEMBER_DONE = "member_done"
    MEMBER_DROPPED = "member_dropped"  # failed or timed out; the turn goes on without it
    CRITIQUE = "critique"
    TOKEN = "token"  # a piece of a member's answer as it is written
    MESSAGE = "message"  # a member's whole answer
    TURN_DONE = "turn_done"
    TURN_CANCELLED = "turn_cancelled"


class Event(BaseModel):
    """One event for one session.

    `seq` counts the events of one job from 0, so a reader can tell the order within a job; `id`
    is the session stream's entry id, set when the event is stored, and is what a reconnecting
    client sends back to replay what it missed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str | None = None
    type: EventType
    session_id: str
    job_id: str
    seq: int = Field(ge=0)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    payload: dict[str, Any] = {}

    @property
    def terminal(self) -> bool:
        """Whether this event ends its job (a result or a failure)."""
        return self.type in (EventType.TRANSCRIPT, EventType.FAILED, EventType.PONG, EventType.LISTEN_DONE) or (
            self.type is EventType.AUDIO and bool(self.payload.get("last", True))
        )
