"""A council's answer as OpenAI's chat completion sees it: the content is what the council says
aloud (the chair's answer, or the fast member's), and everything else is a step.

The responder yields `Step`s and `Reply` pieces (council/replies.py). Asked with
`hear_members=False` and `hear_first=False`, only the final answer's pieces are `speak=True`: the
message's content. Members' own answers (`speak=False`) are gathered and become one `message` step each,
just before that member's `member_done`, so a client reads every member's whole answer in
`council_steps` without a stream of their tokens.

Steps are `{"type": ..., "payload": {...}}`, as the chat WebSocket's events (web/PROTOCOL.md):
`routed` (`route` fast or council, `reason`, `by`), `member_started`, `member_done`,
`member_dropped`, `critique`, and `message` (`member`, `text`). Pure: no I/O.
"""

from typing import Any

from council import Reply, Step
from shared_schemas import payloads


class Deliberation:
    def __init__(self) -> None:
        self.content: list[str] = []
        self.steps: list[dict[str, Any]] = []
        self._members: dict[str, list[str]] = {}

    @property
    def text(self) -> str:
        return "".join(self.content).strip()

    @property
    def route(self) -> str | None:
        """The router's decision, once it was made."""
        return next((s["payload"].get("route") for s in self.steps if s["type"] == "routed"), None)

    def take(self, item: Reply | Step) -> tuple[str, list[dict[str, Any]]]:
        """The content `item` adds to the answer, and the steps it completes."""
        if isinstance(item, Reply):
            if item.speak:
                self.content.append(item.text)
                return item.text, []
            self._members.setdefault(item.member, []).append(item.text)
            return "", []
        steps = []
        if isinstance(item.payload, payloads.MemberDone):
            steps += self._said(item.payload.member)
        steps.append({"type": item.type.value, "payload": item.payload.model_dump(mode="json")})
        self.steps += steps
        return "", steps

    def finish(self) -> list[dict[str, Any]]:
        """Steps for what members said that no `member_done` closed (a responder without steps)."""
        steps = [step for member in list(self._members) for step in self._said(member)]
        self.steps += steps
        return steps

    def _said(self, member: str) -> list[dict[str, Any]]:
        text = "".join(self._members.pop(member, [])).strip()
        return [{"type": "message", "payload": {"member": member, "text": text}}] if text else []
