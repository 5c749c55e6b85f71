"""The hold on a tentative spoken turn's sound (#20).

A listener decides a turn tentatively: the person may only have paused. The turn runs at once (the
question goes to the council, tokens stream), but its sound waits until the listener says the turn
stands (`turn_confirmed`): when the person goes on instead (`speech_started` with `continues`),
the turn is cancelled before any of it was spoken and the next one answers both. A listener that
never says either (an older worker, or one that died) does not hold the answer for ever: it is
spoken `FALLBACK_MS` after the confirmation was due. Typed and recorded turns are never held.

Where the hold sits was measured (README, "Realtime voice"): before the first synthesis job is
enqueued, not before its sound is sent. Holding the sound would save the first sentence's synthesis
once the turn is confirmed, but it synthesizes every turn that is then continued, puts clips of
turns nobody heard in the conversation, and sends the held events out of the stream's order.
"""

import asyncio

__all__ = ["Holds"]

FALLBACK_MS = 3000


class Holds:
    """The confirmations of one session's tentative turns, by turn id."""

    def __init__(self) -> None:
        self._confirmed: dict[str, asyncio.Event] = {}

    def _event(self, turn_id: str) -> asyncio.Event:
        return self._confirmed.setdefault(turn_id, asyncio.Event())

    def confirm(self, turn_id: str) -> None:
        """The listener confirmed the turn (it may come before the turn's runner asks)."""
        self._event(turn_id).set()

    def confirmed(self, turn_id: str) -> bool:
        return self._event(turn_id).is_set()

    async def wait(self, turn_id: str, confirm_ms: int) -> bool:
        """Until the turn is confirmed (True), or the fallback passed without a word (False)."""
        try:
            async with asyncio.timeout((confirm_ms + FALLBACK_MS) / 1000):
                await self._event(turn_id).wait()
            return True
        except TimeoutError:
            return False

    def forget(self, turn_id: str) -> None:
        self._confirmed.pop(turn_id, None)
