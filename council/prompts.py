"""What each model is asked: pure functions from a turn's facts to chat messages."""

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from .members import Member
from .memory import Turn

ROUTER = """You sort requests to a council of advisers. Reply with exactly one word.
FAST: a greeting, thanks, small talk, a command about the conversation, or a simple factual
question one person can answer at once.
COUNCIL: a decision, a trade-off, a plan, a comparison, advice, or anything that deserves
several points of view."""

CRITIQUE = """Other members of the council answered the same request; their answers are below,
anonymized. Critique them briefly: what holds up, what is wrong or missing. Then rank them from
best to worst by their letters. Three sentences at most."""

SYNTHESIS = """Your council's answers and their critiques of each other are above. Weigh them:
keep what holds up, settle disagreements, and answer the person directly with one clear
recommendation. Do not mention the letters or the members' names unless it helps."""


def labels(names: Sequence[str]) -> dict[str, str]:
    """Anonymous labels for answers, in council order: "Answer A", "Answer B", ..."""
    return {name: f"Answer {chr(ord('A') + i)}" for i, name in enumerate(names)}


def system(member: Member, topics: Sequence[str]) -> SystemMessage:
    text = member.persona.strip()
    if topics:
        text += f"\n\nTopics that keep coming up in this conversation: {', '.join(topics)}."
    return SystemMessage(text)


def conversation(member: Member, history: Sequence[Turn], topics: Sequence[str]) -> list[BaseMessage]:
    """The member's persona, the recurring topics, and the conversation so far."""
    return [system(member, topics), *(m for turn in history for m in turn.messages())]


def answer(member: Member, question: str, history: Sequence[Turn], topics: Sequence[str]) -> list[BaseMessage]:
    """A member answering the person."""
    return [*conversation(member, history, topics), HumanMessage(question)]


def critique(member: Member, question: str, others: dict[str, str]) -> list[BaseMessage]:
    """A member critiquing the others' answers, which `others` maps from label to text."""
    shown = "\n\n".join(f"{label}:\n{text.strip()}" for label, text in others.items())
    request = f"The person said:\n{question}\n\n{shown}\n\n{CRITIQUE}"
    return [SystemMessage(member.persona.strip()), HumanMessage(request)]


def synthesis(
    chair: Member,
    question: str,
    history: Sequence[Turn],
    topics: Sequence[str],
    answers: dict[str, tuple[Member, str]],
    critiques: dict[str, str],
) -> list[BaseMessage]:
    """The chair writing the final answer from the labelled answers and the critiques."""
    parts = [f"The person said:\n{question}", "The council's answers:"]
    parts += [f"{label} ({m.name}, {m.role}):\n{text.strip()}" for label, (m, text) in answers.items()]
    if critiques:
        parts.append("Their critiques of each other (same letters):")
        parts += [f"{name}: {text.strip()}" for name, text in critiques.items()]
    parts.append(SYNTHESIS)
    return [*conversation(chair, history, topics), HumanMessage("\n\n".join(parts))]


def router(question: str) -> list[BaseMessage]:
    return [SystemMessage(ROUTER), HumanMessage(question)]
