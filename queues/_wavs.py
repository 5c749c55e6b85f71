"""Joining the WAV clips of one synthesis job (one per sentence, or per chunk of one) into one file."""

import io
import wave


def join_wavs(clips: list[bytes]) -> bytes:
    """One WAV of the clips' frames in the order given (callers sort by `SpeechClip.order`); raises
    ValueError if they differ in channels, sample width or rate. No clips make a valid, empty 16 kHz
    mono WAV."""
    frames, params = [], None
    for clip in clips:
        with wave.open(io.BytesIO(clip)) as w:
            if params is not None and w.getparams()[:3] != params[:3]:
                raise ValueError("the clips do not share one format")
            params = params or w.getparams()
            frames.append(w.readframes(w.getnframes()))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        if params is not None:
            w.setparams(params)
        else:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
        w.writeframes(b"".join(frames))
    return buffer.getvalue()
