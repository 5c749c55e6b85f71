"""What the /v1 routes serve, as OpenAI's model list: `GET /v1/models`, `GET /v1/models/{model}`.

- Chat (`/v1/chat/completions`): `council`, the whole deliberation, and `council-fast`.
- Transcription (`/v1/audio/transcriptions`, `/v1/audio/translations`): OpenAI's names
  (`whisper-1`, `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`), `whisper` and `parakeet`. All mean
  the same thing: the STT engine of the worker that takes
  the job (its `STT_ENGINE`); the app cannot pick a worker by engine, so the name does not either.
  The answer's `X-Council-Engine` header says which engine heard it.
- Speech (`/v1/audio/speech`): `tts-1`, `tts-1-hd` and `gpt-4o-mini-tts` (OpenAI's names: any of
  our voices, and OpenAI's voice names mapped to ours: voices.py), and each
  TTS engine the workers run (`piper`, `espeak`, `coqui`: that engine's voices only). The voices
  are ours, as the workers announced them: each speech model lists its own in `council_voices`.

Every entry has OpenAI's fields (`id`, `object`, `created`, `owned_by`) and three of ours:
`council_kind` (chat, transcription, speech), `council_description`, and for speech
`council_voices` ([{"id", "engine", "description"}]).
"""

import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared_schemas import ErrorCode

from ..services import Services, services
from .errors import OpenAIError, answered

CHAT: Final = {
    "council": "The whole council: the router decides, members answer in parallel and critique, the chair "
    "answers. Members' steps come in `council_steps`.",
    "council-fast": "The council without its critique round. The router still decides: a question it "
    "sends to the whole council is deliberated (the route taken is in `council_steps`).",
}
TRANSCRIPTION: Final = {
    "whisper-1": "OpenAI's name, accepted as is: the workers' STT engine (X-Council-Engine says which).",
    "gpt-4o-mini-transcribe": "OpenAI's name, accepted as is: the workers' STT engine, as whisper-1.",
    "gpt-4o-transcribe": "OpenAI's name, accepted as is: the workers' STT engine, as whisper-1.",
    "whisper": "The workers' STT engine; Whisper (faster-whisper, CPU) where STT_ENGINE=whisper.",
    "parakeet": "The workers' STT engine; NVIDIA Parakeet (NeMo) where STT_ENGINE=parakeet.",
}
SPEECH: Final = {
    "tts-1": "OpenAI's name, accepted as is: any of the workers' voices.",
    "tts-1-hd": "OpenAI's name, accepted as is: the same voices as tts-1.",
    "gpt-4o-mini-tts": "OpenAI's name, accepted as is: the same voices as tts-1 (instructions are not used).",
}
# When this process began serving them: OpenAI's `created`, for clients that sort by it.
CREATED: Final = int(time.time())


def engine_of(description: str) -> str:
    """The TTS engine of a voice, from what its worker announced ("piper: a natural US voice")."""
    return description.partition(":")[0].strip()


def speech_models(voices: dict[str, str]) -> dict[str, list[str]]:
    """Speech model id -> the voices it speaks: OpenAI's names speak them all, an engine its own."""
    models = {name: sorted(voices) for name in SPEECH}
    for voice, description in sorted(voices.items()):
        models.setdefault(engine_of(description), []).append(voice)
    return models


def _entry(model_id: str, kind: str, description: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": CREATED,
        "owned_by": "council",
        "council_kind": kind,
        "council_description": description,
    }


async def catalogue(s: Services) -> list[dict[str, Any]]:
    voices = await s.voices()
    entries = [_entry(name, "chat", text) for name, text in CHAT.items()]
    entries += [_entry(name, "transcription", text) for name, text in TRANSCRIPTION.items()]
    for name, spoken in speech_models(voices).items():
        entry = _entry(name, "speech", SPEECH.get(name, f"The {name} engine's voices."))
        entry["council_voices"] = [
            {"id": v, "engine": engine_of(voices[v]), "description": voices[v].partition(":")[2].strip()}
            for v in spoken
        ]
        entries.append(entry)
    return entries


def unknown_model(model: str, kind: str, known: list[str]) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model {model!r} does not exist here; {kind} models: {', '.join(known)} (GET /v1/models lists all).",
        code=ErrorCode.MODEL_NOT_FOUND,
        param="model",
    )


@answered
async def list_models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": await catalogue(services(request))})


@answered
async def retrieve_model(request: Request) -> JSONResponse:
    model = request.path_params["model"]
    entries = await catalogue(services(request))
    found = next((entry for entry in entries if entry["id"] == model), None)
    if found is None:
        raise unknown_model(model, "the", [entry["id"] for entry in entries])
    return JSONResponse(found)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model}", retrieve_model, methods=["GET"]),
]
