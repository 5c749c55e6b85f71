"""The /v1 routes with the clients people already have, each on its defaults, against the app
served by uvicorn and a real voice worker: LangChain's ChatOpenAI (langchain-openai) and litellm
(as proxies and agent frameworks call OpenAI routes), besides the openai SDK (test_v1_audio.py,
test_v1_chat.py). The chat answers with the echo responder (our own seam: it says the question
back) and, for the 503, with the real council whose LLM server is down."""

import os
import socket
import warnings

import openai
import pytest
from langchain_openai import ChatOpenAI

from council import CouncilSettings
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(180)]

QUESTION = "Should the council build the bridge in the spring?"


@pytest.fixture(scope="module")
def url(settings, serve):
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        yield url


@pytest.fixture(scope="module")
def litellm():
    # Its model price map from the package, never the network; its import warns on this Python.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import litellm

    litellm.telemetry = False
    return litellm


@pytest.fixture(scope="module")
def recording(piper_speech) -> bytes:
    return piper_speech("The council has decided to build the bridge.")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# LangChain.


def test_langchain_chat_openai_invokes_and_streams_the_council(url):
    chat = ChatOpenAI(base_url=f"{url}/v1", api_key="x", model="council", max_retries=0, timeout=60)
    answer = chat.invoke(QUESTION)
    assert answer.content.strip() == QUESTION
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] >= 0
    pieces = list(chat.stream(QUESTION))
    assert "".join(str(p.content) for p in pieces).strip() == QUESTION


def test_langchain_sees_503_before_a_stream_when_no_llm_answers(settings, serve):
    down = CouncilSettings(ollama_base_url=f"http://127.0.0.1:{closed_port()}", check_timeout_s=1)
    with serve(create_app(AppSettings(queues=settings, council=down))) as url:
        chat = ChatOpenAI(base_url=f"{url}/v1", api_key="x", model="council", max_retries=0, timeout=30)
        with pytest.raises(openai.InternalServerError) as refused:
            next(iter(chat.stream(QUESTION)))
        assert refused.value.status_code == 503 and refused.value.code == "llm_unavailable"
        assert refused.value.response.headers["retry-after"]
        with (
            openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client,
            pytest.raises(openai.InternalServerError) as streamed,
        ):
            client.chat.completions.create(model="council", messages=[{"role": "user", "content": "Hi"}], stream=True)
        assert streamed.value.status_code == 503 and "COUNCIL_RESPONDER=echo" in streamed.value.message


# litellm.

# litellm's own types warn (pydantic on its ReadOnly TypedDicts) whenever it builds them.
LITELLM_WARNS = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@LITELLM_WARNS
def test_litellm_completion_whole_and_streamed(url, litellm):
    options = {"model": "openai/council", "api_base": f"{url}/v1", "api_key": "x", "num_retries": 0}
    messages = [{"role": "user", "content": QUESTION}]
    whole = litellm.completion(messages=messages, **options)
    assert whole.choices[0].message.content.strip() == QUESTION
    chunks = list(litellm.completion(messages=messages, stream=True, **options))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == QUESTION


@LITELLM_WARNS
def test_litellm_speech_and_transcription_on_openai_s_default_names(url, litellm, recording):
    base = {"api_base": f"{url}/v1", "api_key": "x"}
    speech = litellm.speech(model="openai/tts-1", voice="alloy", input="The bridge is built.", **base)
    assert speech.response.headers["x-council-voice"] == "max" and len(speech.content) > 1000
    heard = litellm.transcription(
        model="openai/gpt-4o-mini-transcribe", file=("memo.wav", recording, "audio/wav"), **base
    )
    assert "bridge" in heard.text.lower()
