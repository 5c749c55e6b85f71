"""OpenAI-compatible routes under /v1, for the clients that speak OpenAI's API (the openai SDKs,
Open WebUI, Home Assistant, LangChain): the same workers, council, tokens and budgets as the rest
of the app.

| module | route |
|---|---|
| models.py | `GET /v1/models`, `GET /v1/models/{model}`: what the routes below serve |
| transcriptions.py | `POST /v1/audio/transcriptions`: speech to text on the realtime queue |
| speech.py (encoder.py) | `POST /v1/audio/speech`: text to speech, streamed, in OpenAI's formats |
| chat.py (deliberation.py) | `POST /v1/chat/completions`: the council, streamed or whole |

jobs.py runs a request's voice jobs through the app's meter; errors.py says what goes wrong in
OpenAI's error shape; sse.py frames server-sent events.
"""

from . import chat, models, speech, transcriptions

routes = [*models.routes, *transcriptions.routes, *speech.routes, *chat.routes]

__all__ = ["routes"]
