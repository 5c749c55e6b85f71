"""The router: a simple request gets one fast answer, a question worth deliberating gets the
council. Cheap rules decide first and say which one fired; the chair's model decides only when
no rule does, with a one-word answer, and only its first word is read: the call stops there (a
small model that answers the question instead would otherwise write a whole answer, up to its
`max_output_tokens`, before the turn could begin). (The graph may then send a council turn down
the fast path when the budget left cannot cover the council: a decision `by` "budget".)
"""

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import BaseMessage

from shared_schemas import payloads

from . import chat, prompts

Route = Literal["fast", "council"]


@dataclass(frozen=True)
class Decision:
    route: Route
    reason: str
    by: Literal["rules", "llm", "budget"]

    def payload(self) -> payloads.Routed:
        """The `routed` event that says it."""
        return payloads.Routed(route=self.route, reason=self.reason, by=self.by)


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


DELIBERATE = _words(
    r"\b(should (i|we|you|they|he|she)|shall (i|we)|decid\w*|decision|choos\w*|choice|trade-?offs?|"
    r"pros and cons|compar\w*|versus|vs\.?|worth it|plan|planning|strateg\w*|recommend\w*|advi[cs]e|"
    r"options|alternatives|dilemma|weigh|prioriti[sz]e|whether|better off|which (one|is better|should))\b"
)
GREETING = _words(r"^(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening|night))\b")
THANKS = _words(r"^(thanks|thank you|cheers|much appreciated|great|perfect|nice|cool|ok(ay)?|got it)\b")
COMMAND = _words(
    r"^(please )?(repeat|say (that|it) again|again|stop|pause|continue|go on|louder|slower|shorter|"
    r"(can|could) you (repeat|say that again)|what did you say)\b"
)
FIRST_WORD = re.compile(r"\s*\W*\w+\W")  # a word, and what follows it has begun
FACT = _words(
    r"^(what('s| is| are| was| were| time| day| date| year)|which|who|when|where|"
    r"how (much|many|old|far|long|big|tall)|define)\b"
)

# (name, test, route): the first that matches decides; the name is the reason shown to the person.
Rule = tuple[str, Callable[[str, int, Sequence[str]], bool], Route]
RULES: tuple[Rule, ...] = (
    ("asks for a decision, trade-off, plan or comparison", lambda t, n, s: bool(DELIBERATE.search(t)), "council"),
    ("long question (more than 40 words)", lambda t, n, s: n > 40, "council"),
    ("several questions at once", lambda t, n, s: t.count("?") >= 2, "council"),
    ("greeting", lambda t, n, s: n <= 8 and bool(GREETING.match(t)), "fast"),
    ("thanks or acknowledgement", lambda t, n, s: n <= 8 and bool(THANKS.match(t)), "fast"),
    ("command about the conversation", lambda t, n, s: n <= 8 and bool(COMMAND.match(t)), "fast"),
    ("short factual question", lambda t, n, s: n <= 12 and bool(FACT.match(t)), "fast"),
    ("short remark", lambda t, n, s: n <= 3 and "?" not in t, "fast"),
    ("follows up on a recurring topic", lambda t, n, s: any(_mentions(t, topic) for topic in s), "council"),
)


async def first_word(model: chat.ChatModel, messages: Sequence[BaseMessage], on_chunk: chat.OnChunk = None) -> str:
    """The model's answer up to the end of its first word; the rest is not written (leaving the
    stream stops the call)."""
    text = ""
    pieces = chat.pieces(model, messages, on_chunk)
    try:
        async for piece in pieces:
            text += piece
            if FIRST_WORD.match(text):
                break
    finally:
        await pieces.aclose()  # now, not when the generator is collected: the call stops here
    return text.strip()


def _mentions(text: str, topic: str) -> bool:
    return re.search(rf"\b{re.escape(topic)}\b", text, re.IGNORECASE) is not None


def by_rules(text: str, topics: Sequence[str] = ()) -> Decision | None:
    """The first rule that decides `text`, or None when none does."""
    text = text.strip()
    n = len(text.split())
    for name, test, route in RULES:
        if test(text, n, topics):
            return Decision(route, name, "rules")
    return None


async def decide(
    text: str,
    model: chat.ChatModel | None,
    topics: Sequence[str] = (),
    timeout_s: float = 5.0,
    on_chunk: chat.OnChunk = None,
) -> Decision:
    """Rules first; then the model's one word. A model that takes too long, or answers neither
    word, sends the turn to the council; its other errors are the caller's to translate.
    `on_chunk` sees the model's answer as it comes (for the ledger)."""
    if (decision := by_rules(text, topics)) is not None:
        return decision
    if model is None:
        return Decision("council", "no rule matched and no router model", "rules")
    try:
        async with asyncio.timeout(timeout_s):
            word = await first_word(model, prompts.router(text), on_chunk)
    except TimeoutError:
        return Decision("council", f"no rule matched and the router model took over {timeout_s:g} s", "rules")
    found = re.findall(r"\b(FAST|COUNCIL)\b", word.upper())
    if not found:
        return Decision("council", f"the router model answered {word[:40]!r}, not FAST or COUNCIL", "llm")
    route: Route = "fast" if found[0] == "FAST" else "council"
    return Decision(route, f"the router model answered {found[0]}", "llm")
