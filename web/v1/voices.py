"""OpenAI's voice names, spoken by ours: what `/v1/audio/speech` does with `alloy`, `nova`, ...

OpenAI's clients send one of OpenAI's voices, most often `alloy` (the default of many tools).
Each maps to one of our voices: COUNCIL_OPENAI_VOICES (`alloy=joe,nova=ada`) over the defaults
(web.settings.OPENAI_VOICES: espeak's five voices). When no running worker speaks the voice a
name maps to (a worker with Piper's one voice, say), the first voice the workers do speak (in
name order) stands in, so an OpenAI client on its defaults is answered; the `X-Council-Voice`
header says which of our voices spoke.
"""

from collections.abc import Mapping


def spoken_by(voice: str, offered: Mapping[str, str], aliases: Mapping[str, str]) -> str | None:
    """The voice of ours that speaks `voice`: itself when a worker offers it, else the voice an
    OpenAI name maps to (the first offered when no worker speaks that one); None for neither."""
    if voice in offered:
        return voice
    if voice not in aliases or not offered:
        return None
    target = aliases[voice]
    return target if target in offered else sorted(offered)[0]
