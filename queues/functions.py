"""The worker functions, by name: the app enqueues these strings and never imports the worker."""

from typing import Final

TRANSCRIBE: Final = "voice_worker.jobs.transcribe"
SYNTHESIZE: Final = "voice_worker.jobs.synthesize"
# Listens to a streamed microphone; run by a worker's listeners, beside its jobs (voice_worker/listening).
LISTEN: Final = "voice_worker.jobs.listen"
# Writes the next message of a conversation with a language model the workers serve (`llm` queue).
GENERATE: Final = "voice_worker.jobs.generate"
# Does nothing but emit an event: for health checks and the round-trip benchmark.
PING: Final = "voice_worker.jobs.ping"

# What a voice worker runs (see voice_worker/guarded.py).
ALL: Final = (TRANSCRIBE, SYNTHESIZE, LISTEN, GENERATE, PING)
