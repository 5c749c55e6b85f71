"""The OpenAI-compatible routes (web/v1)."""

from typing import Any, Final

from ..transcripts import MEDIA_TYPES
from ..v1 import chat as v1_chat
from ..v1 import encoder as v1_encoder
from ..v1 import speech as v1_speech
from ..v1 import transcriptions as v1_transcriptions
from .parts import _add_error, _error, _json, _operation, _path_param

# The OpenAI-compatible routes (web/v1). Their own errors are in OpenAI's shape, the one shape
# plus `type` and `param`; 401, 503 queue_unavailable and the site check's answer as every route.
_V1_PAGE = " See web/v1 and the README's OpenAI-compatible API."
_V1_BUDGET = _error("`budget_exceeded` (type insufficient_quota): the user is frozen or their budget is spent")
_V1_JOBS_REFUSED = _error(
    "`budget_exceeded` (type insufficient_quota): the user is frozen or their budget is spent; `rate_limited` "
    "(type rate_limit_error, with Retry-After): as many of the user's jobs wait as may; `audio_quota` (type "
    "rate_limit_error): the user's stored audio is at its share"
)
_V1_TIMEOUT = _error("`timeout`: no worker finished in time (a job not started is cancelled)")
_V1_MODEL = _error("`model_not_found`: GET /v1/models lists the models")
_V1_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}
# What the two audio-file routes (transcriptions, translations) share: their text formats, their
# refusals and their form.
_TEXT_FORMATS = {MEDIA_TYPES[f].partition(";")[0]: {"schema": {"type": "string"}} for f in ("txt", "srt", "vtt")}
_AUDIO_ERRORS = {
    "404": _V1_MODEL,
    "413": _error("`audio_too_large`, `too_large`"),
    "429": _V1_JOBS_REFUSED,
    "502": _error("`blob_missing`: the audio expired before a worker read it"),
    "504": _V1_TIMEOUT,
}


def _audio_form(fields: dict[str, Any]) -> dict[str, Any]:
    """A multipart body of an audio file, a model, a response format and the route's own fields."""
    properties = {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string", "examples": ["whisper-1"]},
        "response_format": {"type": "string", "enum": list(v1_transcriptions.FORMATS)},
        **fields,
    }
    schema = {"type": "object", "required": ["file", "model"], "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


V1_PATHS: Final[dict[str, Any]] = {
    "/v1/models": {
        "get": _operation(
            "OpenAI's model list: council, council-fast, the STT models and the speech models with their voices",
            {
                "200": _json(
                    "`{object: list, data: [...]}`; voices in each speech model's `council_voices`", {"type": "object"}
                )
            },
            description="Voices are those the workers announced." + _V1_PAGE,
        )
    },
    "/v1/models/{model}": {
        "get": _operation(
            "One model of the list",
            {"200": _json("The model", {"type": "object"}), "404": _V1_MODEL},
            parameters=[_path_param("model", "^.+$", "council")],
        )
    },
    "/v1/audio/transcriptions": {
        "post": _operation(
            "OpenAI's transcription: one file, on the realtime queue",
            {
                "200": {
                    "description": "The transcript as `response_format` asks; with stream=true, transcript.text "
                    "events. X-Council-Engine names the STT engine",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        **_TEXT_FORMATS,
                        **_V1_STREAM,
                    },
                },
                "400": _error(
                    "`invalid_request` (a field missing, malformed or unknown; `param` names it), `empty_audio`, "
                    "`undecodable_audio`, `audio_too_long`, ... (the worker's word on the audio)"
                ),
                **_AUDIO_ERRORS,
            },
            description=(
                f"Fields: {', '.join(sorted(v1_transcriptions.FIELDS))}; response_format "
                f"{', '.join(v1_transcriptions.FORMATS)}. `prompt` and `temperature` are accepted and not used."
                + _V1_PAGE
            ),
            requestBody=_audio_form(
                {
                    "language": {"type": "string", "examples": ["en"]},
                    "timestamp_granularities[]": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(v1_transcriptions.GRANULARITIES)},
                    },
                    "stream": {"type": "boolean"},
                }
            ),
        )
    },
    "/v1/audio/translations": {
        "post": _operation(
            "OpenAI's translation to English: refused by our engines, which know English only",
            {
                "200": {
                    "description": "English text of the speech, as `response_format` asks (an engine that translates)",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        **_TEXT_FORMATS,
                    },
                },
                "400": _error(
                    "`invalid_payload`: the workers' engine (named) knows only English and cannot translate; "
                    "`invalid_request` (a field missing, malformed or unknown), the worker's word on the audio"
                ),
                **_AUDIO_ERRORS,
            },
            description=(
                f"Fields: {', '.join(sorted(v1_transcriptions.TRANSLATION_FIELDS))}; response_format "
                f"{', '.join(v1_transcriptions.FORMATS)}." + _V1_PAGE
            ),
            requestBody=_audio_form({}),
        )
    },
    "/v1/audio/speech": {
        "post": _operation(
            "OpenAI's text to speech: our voices (or OpenAI's, mapped to ours), streamed as each sentence is spoken",
            {
                "200": {
                    "description": "The speech (chunked, but for wav and flac, whole with their length); "
                    "X-Sample-Rate: the samples' rate (pcm is 16-bit little-endian mono at it); X-Council-Voice: "
                    "the voice of ours that spoke",
                    "content": {v1_encoder.MEDIA_TYPES[f].partition(";")[0]: {} for f in v1_encoder.MEDIA_TYPES},
                },
                "400": _error(
                    "`invalid_request` (`param` names the field: speed out of 0.25-4.0, a format, ...), "
                    "`unknown_voice`, `empty_text`, `text_too_long`"
                ),
                "404": _V1_MODEL,
                "413": _error(f"`too_large`: the body is over {v1_speech.MAX_BODY_BYTES // 1024} KiB"),
                "429": _V1_JOBS_REFUSED,
                "500": _error("`engine_failed`: ffmpeg could not encode the speech"),
                "502": _error("`blob_missing` or `engine_failed`: the worker's audio could not be read"),
                "504": _V1_TIMEOUT,
            },
            description=f"Input up to {v1_speech.MAX_INPUT_CHARS} characters." + _V1_PAGE,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["model", "input", "voice"],
                            "properties": {
                                "model": {"type": "string", "examples": ["tts-1"]},
                                "input": {"type": "string", "maxLength": v1_speech.MAX_INPUT_CHARS},
                                "voice": {"type": "string", "examples": ["max", "alloy"]},
                                "response_format": {"type": "string", "enum": list(v1_encoder.MEDIA_TYPES)},
                                "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1.0},
                            },
                        },
                        "example": {"model": "tts-1", "input": "The council has decided.", "voice": "max"},
                    }
                },
            },
        )
    },
    "/v1/chat/completions": {
        "post": _operation(
            "OpenAI's chat completion, answered by the council; members' steps in `council_steps`",
            {
                "200": {
                    "description": "A chat.completion, or with stream=true chat.completion.chunk events and [DONE]",
                    "content": {"application/json": {"schema": {"type": "object"}}, **_V1_STREAM},
                },
                "400": _error("`invalid_request`: a field missing, malformed or not supported; `param` names it"),
                "404": _V1_MODEL,
                "413": _error(f"`too_large`: the body is over {v1_chat.MAX_BODY_BYTES // 1024} KiB"),
                "429": _V1_BUDGET,
                "502": _error("`council_failed`: no member could answer"),
            },
            description="Models: council, council-fast." + _V1_PAGE,
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "required": ["model", "messages"]},
                        "example": {"model": "council", "messages": [{"role": "user", "content": "Should we wait?"}]},
                    }
                },
            },
        )
    },
}
_add_error(V1_PATHS["/v1/chat/completions"]["post"], "503", "`llm_unavailable`: no LLM server answers (Retry-After)")
_add_error(V1_PATHS["/v1/audio/transcriptions"]["post"], "503", "`worker_lost`: the worker died with the job")
