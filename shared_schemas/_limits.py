"""Limits both runtimes enforce the same way: the app before enqueueing, the worker on receipt."""

from typing import Final, Literal

SCHEMA_VERSION: Final = 1

# Audio in.
AUDIO_FORMATS: Final = ("wav", "flac", "ogg", "mp3", "webm")
AudioFormat = Literal["wav", "flac", "ogg", "mp3", "webm"]
MAX_AUDIO_BYTES: Final = 64 * 1024 * 1024
# Decoded length is capped too: a small compressed file must not expand into hours of samples.
MAX_AUDIO_SECONDS: Final = 2 * 60 * 60.0
MIN_AUDIO_SECONDS: Final = 0.1
STT_SAMPLE_RATE: Final = 16_000

# A streamed microphone (the `listen` job): PCM16 little-endian mono at this rate, in frames of
# 10-1000 ms (the page sends 20 ms).
MIC_SAMPLE_RATE: Final = 16_000
MAX_MIC_FRAME_BYTES: Final = 32_000

# Text to speak: one synthesis job speaks one sentence or a short paragraph.
MAX_TEXT_CHARS: Final = 1_000

# Generation (the `generation` job): a conversation of at most this many messages, each at most
# this long, answered with at most this many tokens.
MAX_CHAT_MESSAGES: Final = 256
MAX_CHAT_CHARS: Final = 32_000
MAX_GENERATED_TOKENS: Final = 4_096

# Names: ids that become Redis keys stay short and plain.
ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,128}$"
VOICE_PATTERN: Final = r"^[A-Za-z0-9_.+-]{1,64}$"
# A language model a worker serves: `builtin`, or a folder or file name under MODEL_DIR/llm/.
MODEL_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$"
