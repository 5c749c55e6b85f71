"""The ids of a conversation's turns and of the jobs a turn runs, made here and nowhere else.

A turn is `turn-<12 hex>` (typed, uploaded) or `<stream's turn prefix>-<n>` (the n-th a listener
found in a microphone stream `mic-<12 hex>`, whose prefix is `turn-<the same hex>`). A turn's jobs
are named after it: its transcription `<turn>-stt`, its n-th sentence's speech `<turn>-say-<n>`;
`turn_of` finds the turn back from any of them.
"""

import re
import uuid

_JOB_OF_TURN = re.compile(r"^(?P<turn>.+?)(?:-stt|-say-\d+)$")


def _hex() -> str:
    return uuid.uuid4().hex[:12]


def new_turn_id() -> str:
    """A turn typed or uploaded."""
    return f"turn-{_hex()}"


def new_stream_ids() -> tuple[str, str]:
    """A microphone stream's id and the prefix of the turns its listener finds in it."""
    hex_id = _hex()
    return f"mic-{hex_id}", f"turn-{hex_id}"


def listener_turn_id(turn_prefix: str, number: int) -> str:
    """The `number`-th turn (from 1) a listener found in a stream."""
    return f"{turn_prefix}-{number}"


def transcript_job_id(turn_id: str) -> str:
    """The job that transcribes a turn's words (a listener publishes its transcript under it too)."""
    return f"{turn_id}-stt"


def speech_job_id(turn_id: str, index: int) -> str:
    """The job that speaks the `index`-th sentence (from 0) of a turn's answer."""
    return f"{turn_id}-say-{index}"


def turn_of(job_id: str) -> str:
    """The turn a job id belongs to (a turn's own id is its own)."""
    found = _JOB_OF_TURN.match(job_id)
    return found["turn"] if found else job_id
