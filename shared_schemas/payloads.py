"""What each event says: one model per `EventType`, the `payload` of an `Event` of that type.

Workers and the app build these to emit, and read them once an event is parsed (`Event` picks
the model by the event's `type`): nobody indexes a dict by a key spelled by convention.

The JSON is what it was when payloads were plain dicts, so events stored before still replay, and
what a browser gets is unchanged: a payload holds the fields it was given (an optional field left
out stays out of its JSON, one given as null stays null), except the payloads that are a job's
result or failure (`Progress`, `Transcript`, `Audio`, `Failed`), written whole as they always
were; and fields a newer sender adds are kept and passed on (`extra="allow"`), not refused.

Import as `from shared_schemas import payloads`, then `payloads.TurnStarted(...)`.
"""

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from . import _errors, _results

__all__ = [
    "PAYLOADS",
    "Audio",
    "Critique",
    "EchoChecked",
    "EventType",
    "Failed",
    "Generated",
    "Joined",
    "ListenDone",
    "Listening",
    "MemberDone",
    "MemberDropped",
    "MemberStarted",
    "Message",
    "Payload",
    "Pong",
    "Progress",
    "Routed",
    "SpeechStarted",
    "SpeechStopped",
    "Token",
    "Transcript",
    "TranscriptPartial",
    "TurnCancelled",
    "TurnConfirmed",
    "TurnDone",
    "ToolUse",
    "TurnStarted",
]


class EventType(StrEnum):
    # From workers, about one job.
    PROGRESS = "progress"
    TRANSCRIPT = "transcript"
    AUDIO = "audio"
    FAILED = "failed"
    PONG = "pong"
    GENERATED = "generated"  # a generation job's whole answer and its counts (its pieces came as `token`)
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
    ECHO_CHECKED = "echo_checked"  # words heard over an answer: its echo, the person, or unsure
    ROUTED = "routed"  # the router's decision: fast single answer, or the whole council
    MEMBER_STARTED = "member_started"
    MEMBER_DONE = "member_done"
    MEMBER_DROPPED = "member_dropped"  # failed or timed out; the turn goes on without it
    CRITIQUE = "critique"
    TOKEN = "token"  # a piece of a member's answer as it is written (by the app, or a generation job)
    MESSAGE = "message"  # a member's whole answer
    TURN_DONE = "turn_done"
    TURN_CANCELLED = "turn_cancelled"


class Payload(BaseModel):
    """The base of every payload: frozen, tolerant of fields it does not know, and written as the
    fields it was given (parsed, re-written JSON is the same JSON)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    event_type: ClassVar[EventType]
    whole: ClassVar[bool] = False  # written with every field, given or not (a result's)

    @model_serializer(mode="wrap")
    def _given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.whole:
            return data
        return {key: value for key, value in data.items() if key in self.model_fields_set}


# -- from workers, about one job -------------------------------------------------------------------


class Progress(_results.Progress, Payload):
    event_type = EventType.PROGRESS
    whole = True


class Transcript(_results.Transcript, Payload):
    """A transcription job's result; a listener's turn's words (on `<turn>-stt`)."""

    event_type = EventType.TRANSCRIPT
    whole = True


class Audio(_results.SpeechClip, Payload):
    """A clip of a synthesis job; `last` ends the job."""

    event_type = EventType.AUDIO
    whole = True


class Failed(_errors.JobError, Payload):
    """A job failed; also the `error` of a failed `turn_done` (which may say more: a budget's)."""

    event_type = EventType.FAILED
    whole = True


class Pong(Payload):
    event_type = EventType.PONG


class Generated(Payload):
    """A generation job's whole answer and its counts (its RQ result too)."""

    event_type = EventType.GENERATED
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    model: str
    engine: str
    first_token_ms: float
    tokens_per_s: float


class Token(Payload):
    """A piece of a member's answer as it is written (by the app, or a generation job)."""

    event_type = EventType.TOKEN
    member: str | None
    text: str


# -- from a listener, about a streamed microphone (`job_id` is the stream's id) ------------------------


class _Heard(Payload):
    """What a listener says while a stream is open: which stream, which of its turns, how far
    behind real time it reads."""

    stream_id: str
    turn: int
    lag_ms: int = 0


class Listening(_Heard):
    event_type = EventType.LISTENING
    mode: Literal["hands_free", "push_to_talk"]
    worker: str
    resumed: bool = False


class SpeechStarted(_Heard):
    event_type = EventType.SPEECH_STARTED
    at_s: float
    resumed: bool = False
    continues: str | None = None  # a tentative turn this speech goes on with (never confirmed)


class SpeechStopped(_Heard):
    event_type = EventType.SPEECH_STOPPED
    at_s: float


class TranscriptPartial(_Heard):
    event_type = EventType.TRANSCRIPT_PARTIAL
    text: str


class TurnConfirmed(_Heard):
    """Spoken turn `turn_id` (number `turn`) had its hold of silence: its answer may be heard."""

    event_type = EventType.TURN_CONFIRMED
    turn_id: str
    at_s: float


class ListenDone(Payload):
    event_type = EventType.LISTEN_DONE
    stream_id: str
    reason: str  # closed, gone, idle
    turns: int
    max_lag_ms: int = 0
    shed: int = 0


# -- about one turn (`job_id` is the turn id) -------------------------------------------------------


class TurnStarted(Payload):
    """A turn begins: typed, uploaded (its text comes with its transcript), or decided by a
    listener in a stream, which also says where and why, and how much more silence confirms it.

    The event's `seq` is the turn's first: whoever goes on publishing for the turn (the app, after
    a listener) numbers its events after it (`Event.next_seq`)."""

    event_type = EventType.TURN_STARTED
    input: Literal["text", "voice"]
    text: str | None = None
    # A listener's turn only:
    stream_id: str | None = None
    reason: str | None = None  # turn_model, question, silence, max_turn, closed
    speech_end_s: float | None = None
    decided_s: float | None = None
    turn_probability: float | None = None
    turn: int | None = None  # the turn's number in its stream
    confirm_ms: int = 0  # how much more silence confirms it (0: it stands already)


class Joined(Payload):
    event_type = EventType.JOINED
    text: str  # the whole question: the turn it joined and its own words


class EchoChecked(Payload):
    event_type = EventType.ECHO_CHECKED
    verdict: Literal["echo", "person", "unsure"]
    over: str  # the turn whose answer was sounding
    text: str


class Routed(Payload):
    event_type = EventType.ROUTED
    route: Literal["fast", "council"]
    reason: str
    by: str  # rules, llm, budget


class MemberStarted(Payload):
    event_type = EventType.MEMBER_STARTED
    member: str
    role: str | None = None
    voice: str | None = None
    phase: str | None = None


class ToolUse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    tool: str
    status: str  # ok, refused, error
    detail: str = ""


class MemberDone(Payload):
    event_type = EventType.MEMBER_DONE
    member: str
    phase: str | None = None
    chars: int | None = None
    elapsed_s: float | None = None
    tools: list[ToolUse] | None = None  # only when it called tools


class MemberDropped(Payload):
    event_type = EventType.MEMBER_DROPPED
    member: str
    reason: str
    phase: str | None = None


class Critique(Payload):
    event_type = EventType.CRITIQUE
    member: str
    text: str


class Message(Payload):
    """A member's whole answer; after a stop, again with `cut`: what was heard, for `heard_s`."""

    event_type = EventType.MESSAGE
    member: str | None
    text: str
    cut: bool = False
    heard_s: float | None = None


class TurnDone(Payload):
    """The turn ended: `done` (with `speech_failed` and the first `error` when some of it could
    not be spoken), `empty`, `echo` or `overheard` (with `text`), or `failed` (with `error`)."""

    event_type = EventType.TURN_DONE
    status: Literal["done", "empty", "echo", "overheard", "failed"]
    error: Failed | None = None
    speech_failed: int | None = None
    text: str | None = None


class TurnCancelled(Payload):
    event_type = EventType.TURN_CANCELLED
    cancelled_jobs: list[str] = []
    reason: Literal["continued", "barge_in"] | None = None


PAYLOADS: dict[EventType, type[Payload]] = {
    cls.event_type: cls
    for cls in (
        Progress,
        Transcript,
        Audio,
        Failed,
        Pong,
        Generated,
        Token,
        Listening,
        SpeechStarted,
        SpeechStopped,
        TranscriptPartial,
        TurnConfirmed,
        ListenDone,
        TurnStarted,
        Joined,
        EchoChecked,
        Routed,
        MemberStarted,
        MemberDone,
        MemberDropped,
        Critique,
        Message,
        TurnDone,
        TurnCancelled,
    )
}
assert set(PAYLOADS) == set(EventType), "every event type has its payload model"
