"""Redis replies as text: a client made with `decode_responses` gives str, the others bytes."""

from typing import overload


@overload
def as_text(reply: bytes | str) -> str: ...
@overload
def as_text(reply: bytes | str | None) -> str | None: ...
def as_text(reply: bytes | str | None) -> str | None:
    return reply.decode() if isinstance(reply, bytes) else reply
