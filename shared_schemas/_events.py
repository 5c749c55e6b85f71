"""The event envelope: everything a worker or the app tells a session comes back in one of these,
its `payload` the model of its `type` (payloads.py)."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, model_validator

from ._limits import SCHEMA_VERSION
from .payloads import PAYLOADS, Audio, EventType, Payload

_TERMINAL = frozenset(
    {EventType.TRANSCRIPT, EventType.GENERATED, EventType.FAILED, EventType.PONG, EventType.LISTEN_DONE}
)


class Event(BaseModel):
    """One event for one session.

    `seq` counts the events of one job from 0, so a reader can tell the order within a job; `id`
    is the session stream's entry id, set when the event is stored, and is what a reconnecting
    client sends back to replay what it missed. Parsed from JSON, the payload is validated as the
    model of the event's `type` (an unknown type is refused); fields a newer sender adds to the
    envelope are ignored, those it adds to a payload kept.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str | None = None
    type: EventType
    session_id: str
    job_id: str
    seq: int = Field(ge=0)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    payload: SerializeAsAny[Payload]

    @classmethod
    def of(cls, payload: Payload, *, session_id: str, job_id: str, seq: int) -> "Event":
        """The event that says `payload` (its type is the payload's)."""
        return cls(type=payload.event_type, session_id=session_id, job_id=job_id, seq=seq, payload=payload)

    @model_validator(mode="before")
    @classmethod
    def _typed_payload(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" in data and isinstance(payload := data.get("payload", {}), dict):
            model = PAYLOADS[EventType(data["type"])]  # ValueError: a type this side does not know
            data = {**data, "payload": model.model_validate(payload)}
        return data

    @model_validator(mode="after")
    def _payload_of_its_type(self) -> "Event":
        if type(self.payload) is not PAYLOADS[self.type]:
            raise ValueError(f"a {self.type} event's payload is {PAYLOADS[self.type].__name__}, not {self.payload!r}")
        return self

    @property
    def next_seq(self) -> int:
        """The seq of the next event of this job: where whoever goes on publishing for it starts
        (the app, after the `turn_started` a listener published)."""
        return self.seq + 1

    @property
    def terminal(self) -> bool:
        """Whether this event ends its job (a result or a failure)."""
        if isinstance(self.payload, Audio):
            return self.payload.last
        return self.type in _TERMINAL
