"""The seam between a turn (web) and whatever answers it: a responder yields replies and steps.

`Reply` is a piece of a member's answer as it is written; `speak=True` asks for it to be spoken
in that member's voice, sentence by sentence, as soon as each sentence is whole. `Step` is
something about the deliberation a person may want to see (the router's decision, a member
starting, finishing or dropping out, a critique): its payload is that event's (shared_schemas.payloads).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from shared_schemas import payloads


@dataclass(frozen=True)
class Reply:
    member: str
    voice: str
    text: str
    speak: bool = True


@dataclass(frozen=True)
class Step:
    payload: payloads.Payload

    @property
    def type(self) -> payloads.EventType:
        return self.payload.event_type


class Responder(Protocol):
    def answer(
        self,
        session_id: str,
        turn_id: str,
        text: str,
        voice: str,
        *,
        hear_members: bool | None = None,
        user: str = "anonymous",
    ) -> AsyncIterator[Reply | Step]: ...

    async def heard(self, session_id: str, turn_id: str, question: str, answer: str) -> None:
        """The answer to `turn_id` was stopped: the person heard only `answer` of it, and that is
        what the conversation goes on from."""


class EchoResponder:
    """Speaks the user's words back in the voice they picked: for running without an LLM."""

    member = "Echo"

    async def answer(
        self,
        session_id: str,
        turn_id: str,
        text: str,
        voice: str,
        *,
        hear_members: bool | None = None,
        user: str = "anonymous",
    ) -> AsyncIterator[Reply | Step]:
        yield Reply(self.member, voice, text)

    async def heard(self, session_id: str, turn_id: str, question: str, answer: str) -> None:
        """Echo remembers nothing."""
