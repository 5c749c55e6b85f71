"""The turns a microphone stream's listener decides, as one chat session runs them (#20).

- A turn is decided *tentatively* (`turn_started` with `confirm_ms`): it runs at once, its sound
  held until `turn_confirmed` (hold.py). When the person goes on first (`speech_started` with
  `continues`), it is cancelled silently (`turn_cancelled`, reason `continued`) and the next turn
  answers both (`joined`).
- A turn heard while an answer sounds may be that answer's own echo (no headphones). It is decided
  on its transcript (echo.py): our echo is dropped (`echo_checked` verdict `echo`, `turn_done`
  status `echo`); the person is a barge-in (`echo_checked` verdict `person`: the page stops the
  answer where it was heard, the server sends no more of it, and the turn runs); when it cannot be
  told, the words are kept and shown (`turn_done` status `overheard`). Interim words the person
  says over the answer stop it before their turn ends.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from shared_schemas import Event, payloads, turn_of

from .echo import Echo, Verdict, words
from .turns import STREAMED_TRANSCRIPT_S, transcript_lost

if TYPE_CHECKING:
    from .chat import ChatSession

__all__ = ["SpokenTurns", "log_failure"]

log = logging.getLogger(__name__)
EARLY_WORDS = 3  # interim words, not the answer's, that stop it before the person's turn ends


class SpokenTurns:
    def __init__(self, session: "ChatSession") -> None:
        self.session = session
        self.runner = session.runner
        self.echo = Echo()  # what the page is saying
        self.heard: dict[str, asyncio.Future[str]] = {}  # turn id -> its transcript, once it comes
        self.asked: dict[str, str] = {}  # a listener turn's question before its own words (what it joined)
        self.join_next: str | None = None  # a tentative turn the person went on from: joined to the next
        self.barged: set[tuple[str, int]] = set()  # (stream, turn number) that already stopped an answer
        self.spoken_over: set[str] = set()  # answers the person spoke over (stopped by the server)
        self.unsure: dict[str, str] = {}  # turns heard over an answer and not told from its echo: their words
        self._tasks: set[asyncio.Task[None]] = set()
        self._order: asyncio.Task[None] | None = None  # the turn event being handled, when it waits

    def on_event(self, event: Event) -> None:
        """An event of one of this session's streams (its listener's), as it comes live."""
        p = event.payload
        if isinstance(p, payloads.TurnStarted):
            # The listener published the turn's first event: the runner's go on after it.
            self.runner.adopt(event)
            self.heard[event.job_id] = asyncio.get_running_loop().create_future()
            if (over := self.echo.sounding()) is not None:
                # An answer is sounding: these words may be its echo. Decided on the transcript.
                self._in_order(lambda: self.judge(event, over), f"{event.job_id}-judge")
            else:
                self._in_order(lambda: self.start(event), f"{event.job_id}-start")
        elif isinstance(p, payloads.TurnConfirmed):
            self.runner.holds.confirm(p.turn_id)
        elif isinstance(p, payloads.SpeechStarted) and p.continues:
            turn_id = p.continues
            self._in_order(lambda: self.continued(turn_id), f"{turn_id}-continued")
        elif isinstance(p, payloads.TranscriptPartial) and (sounding := self.echo.sounding()) is not None:
            key, text = (p.stream_id, p.turn), p.text
            if key not in self.barged and len(words(text)) >= EARLY_WORDS and self.echo.judge(text) is Verdict.PERSON:
                self.barged.add(key)
                self.barge_in(sounding, sounding, text)

    def transcript(self, event: Event) -> None:
        """A transcript event: one of ours (`<turn>-stt`) is what the listener heard of that turn."""
        heard = self.heard.get(turn_of(event.job_id))
        if heard is not None and not heard.done() and isinstance(event.payload, payloads.Transcript):
            heard.set_result(event.payload.text)

    def start(self, event: Event) -> None:
        """Run the listener's turn (`event` is its `turn_started`)."""
        s = self.session
        joined, self.join_next = self.join_next, None
        if joined is None:
            # The person went on before any of the last answer was heard (a pause taken for the
            # end of a turn): the new turn answers both, as one question.
            running = s.turn is not None and not s.turn.done() and s.turn_id not in s.played
            joined = (self.question(s.turn_id or "") or None) if running else None
        self.asked[event.job_id] = joined or ""
        assert isinstance(event.payload, payloads.TurnStarted)
        confirm_ms = event.payload.confirm_ms
        s.start_turn(  # in the voice the page has chosen now (`options`), not when the microphone opened
            None, None, turn_id=event.job_id, started=event, joined=joined, confirm_ms=confirm_ms
        )

    def question(self, turn_id: str) -> str:
        """What listener turn `turn_id` asks: what it joined, and its words (once heard)."""
        heard = self.heard.get(turn_id)
        said = heard.result() if heard is not None and heard.done() else ""
        return self.runner.questions.get(turn_id) or f"{self.asked.get(turn_id, '')} {said}".strip()

    def continued(self, turn_id: str) -> None:
        """The person went on after tentative turn `turn_id`: unless some of its answer was heard
        already (a listener that never confirmed it), it is cancelled and the next answers both."""
        s = self.session
        if (kept := self.unsure.pop(turn_id, None)) is not None:
            self.join_next = kept  # words we could not tell from our echo, and then went on from
            return
        if turn_id != s.turn_id or s.turn is None or s.turn.done() or turn_id in s.played:
            return
        self.join_next = self.question(turn_id) or None
        self.runner.reasons[turn_id] = "continued"
        s.cancel_turn()

    async def judge(self, event: Event, over: str) -> None:
        """A turn heard while answer `over` sounded: our echo, the person, or cannot be told."""
        turn_id = event.job_id
        try:
            text = await asyncio.wait_for(asyncio.shield(self.heard[turn_id]), STREAMED_TRANSCRIPT_S)
        except TimeoutError:  # the listener died before writing it: said now, not after a second wait
            failed = payloads.TurnDone(status="failed", error=transcript_lost())
            return await self.runner.end_unanswered(turn_id, failed)
        if not words(text):
            return await self.runner.end_unanswered(turn_id, payloads.TurnDone(status="empty"))
        verdict = self.echo.judge(text)
        log.info("turn %s heard over %s: %s (%r)", turn_id, over, verdict.value, text)
        if verdict is Verdict.PERSON:
            self.barge_in(over, turn_id, text)
            return self.start(event)
        await self.runner.checked(turn_id, payloads.EchoChecked(verdict=verdict.value, over=over, text=text))
        status = "echo" if verdict is Verdict.ECHO else "overheard"
        if verdict is Verdict.UNSURE:
            self.unsure[turn_id] = text  # if the person goes on from it, the next turn joins it
        await self.runner.end_unanswered(turn_id, payloads.TurnDone(status=status, text=text))

    def barge_in(self, over: str, job_id: str, text: str) -> None:
        """The person spoke over answer `over`: no more of it goes out, its speech still queued is
        cancelled, and the page stops it (`echo_checked`, verdict `person`, published on `job_id`:
        their turn, or the answer when their turn is not decided yet) and says where it stopped."""
        s = self.session
        s.stopped.add(over)
        self.spoken_over.add(over)
        self.echo.stopped(over)
        checked = self.runner.checked(job_id, payloads.EchoChecked(verdict=Verdict.PERSON.value, over=over, text=text))
        self._spawn(checked, f"{job_id}-checked")
        if over == s.turn_id and s.turn is not None and not s.turn.done():
            self.runner.reasons[over] = "barge_in"
            s.cancel_turn()

    def _in_order(self, step: Callable[[], Coroutine[Any, Any, None] | None], name: str) -> None:
        """Handle a turn event after the one before it (a turn waiting for its verdict, or its
        transcript, is decided before the next turn or a `continues` is seen): at once when
        nothing is pending, as the next step otherwise."""
        before = self._order
        if before is None or before.done():
            if (work := step()) is not None:
                self._order = self._spawn(work, name)
            return

        async def after() -> None:
            await asyncio.wait([before])
            if (work := step()) is not None:
                await work

        self._order = self._spawn(after(), name)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)
        return task


def log_failure(task: asyncio.Task[None]) -> None:
    """A task's unexpected end, logged with its trace (a turn's, or one of these steps')."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
