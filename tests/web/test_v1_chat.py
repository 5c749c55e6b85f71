"""The OpenAI-compatible chat completions and model list, with the official openai SDK as the
client, against the app served by uvicorn with the council on scripted chat models (and a real
voice worker announcing its voices): streamed and whole answers, members' steps, token usage from
the ledger, and errors in OpenAI's shape."""

import uuid

import httpx
import openai
import pytest

from billing import Ledger
from council import OLLAMA_MEMBERS_FILE, CouncilResponder, CouncilSettings, load_members
from council.scripted import Scripted, tokens
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(120)]

QUESTION = "Should I buy a house now or wait a year, given the rates?"
CHAIR = "We agree: wait a year. Then buy the house."


def scripted_council(settings: AppSettings):
    council = load_members(OLLAMA_MEMBERS_FILE)
    models = {m.name: Scripted(script=[f"{m.name} weighs it. It depends on cost."]) for m in council.members}
    models[council.chair.name] = Scripted(script=[CHAIR])
    council_settings = CouncilSettings(member_timeout_s=5, chair_timeout_s=5)
    app = create_app(
        settings, make_responder=lambda aredis: CouncilResponder(council_settings, council, models, aredis)
    )
    return app, council


@pytest.fixture(scope="module")
def served(settings, serve):
    app, council = scripted_council(AppSettings(queues=settings))
    with serve(app) as url:
        yield url, council


@pytest.fixture(scope="module")
def client(served):
    with openai.OpenAI(base_url=f"{served[0]}/v1", api_key="x", max_retries=0, timeout=60) as client:
        yield client


def ask(client, question: str = QUESTION, **options):
    return client.chat.completions.create(
        model=options.pop("model", "council"), messages=[{"role": "user", "content": question}], **options
    )


def test_a_streamed_completion_is_the_chair_s_answer_in_chunks_then_usage(client, served):
    _, council = served
    stream = ask(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.strip() == CHAIR
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # piece by piece
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finished] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= tokens(CHAIR)
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    steps = [step for c in chunks for step in (c.model_extra or {}).get("council_steps", [])]
    routed = next(s for s in steps if s["type"] == "routed")
    assert routed["payload"]["route"] == "council"
    said = {s["payload"]["member"]: s["payload"]["text"] for s in steps if s["type"] == "message"}
    assert said == {m.name: f"{m.name} weighs it. It depends on cost." for m in council.members}
    # Members' steps come before the chair writes: their messages precede the first content chunk.
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    last_message = max(
        i
        for i, c in enumerate(chunks)
        for s in (c.model_extra or {}).get("council_steps", [])
        if s["type"] == "message"
    )
    assert last_message < first_content


def test_a_stream_is_server_sent_events_ending_with_done(served):
    url, _ = served
    body = {"model": "council", "stream": True, "messages": [{"role": "user", "content": "Hello there."}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_a_whole_completion_has_the_answer_the_members_steps_and_usage(client, served):
    _, council = served
    completion = ask(client)
    assert completion.object == "chat.completion" and completion.model == "council"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == CHAIR and choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens >= tokens(CHAIR)
    steps = completion.model_extra["council_steps"]
    types = [s["type"] for s in steps]
    assert types[0] == "routed" and "critique" in types
    assert {s["payload"]["member"] for s in steps if s["type"] == "member_done"} >= {m.name for m in council.members}


def test_council_fast_answers_a_greeting_with_the_fast_member_and_no_critique(client, served):
    _, council = served
    completion = ask(client, "Hello there.", model="council-fast")
    steps = completion.model_extra["council_steps"]
    assert steps[0]["payload"]["route"] == "fast"
    assert {s["payload"]["member"] for s in steps if s["type"] == "member_started"} == {council.fast.name}
    assert "critique" not in [s["type"] for s in steps]
    assert completion.choices[0].message.content == CHAIR  # the chair is the fast member here


def test_earlier_messages_are_not_the_question(client):
    completion = client.chat.completions.create(
        model="council",
        messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Ahoy."},
            {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
        ],
    )
    assert completion.model_extra["council_steps"][0]["payload"]["route"] == "fast"  # "Thanks!" alone


def test_models_lists_the_council_the_stt_models_and_the_voices(client):
    listed = {m.id: m for m in client.models.list()}
    assert {"council", "council-fast", "whisper-1", "tts-1"} <= set(listed)
    assert listed["council"].model_extra["council_kind"] == "chat"
    assert listed["whisper-1"].model_extra["council_kind"] == "transcription"
    voices = {v["id"]: v["engine"] for v in listed["tts-1"].model_extra["council_voices"]}
    assert voices["max"] == "espeak" and voices["joe"] == "piper"
    assert {v["id"] for v in listed["espeak"].model_extra["council_voices"]} == {
        name for name, engine in voices.items() if engine == "espeak"
    }
    assert client.models.retrieve("council-fast").id == "council-fast"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-5")
    assert missing.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"model": "gpt-5"}, "model"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"extra_body": {"frobnicate": True}}, "frobnicate"),
        ({"messages": [{"role": "assistant", "content": "Hi."}]}, "messages[0]"),
    ],
)
def test_bad_requests_are_400_or_404_naming_the_field(client, options, param):
    request = {"model": "council", "messages": [{"role": "user", "content": "Hello."}], **options}
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as refused:
        client.chat.completions.create(**request)
    assert refused.value.param == param and refused.value.type == "invalid_request_error"
    assert set(refused.value.body) == {"message", "type", "param", "code"}


def test_a_frozen_user_is_refused_429_and_a_wrong_token_401(settings, connection, serve):
    name, token = f"frozen{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    Ledger(connection, settings.key_prefix).freeze("user", name)
    app, _ = scripted_council(AppSettings(queues=settings, api_users={name: token}))
    with serve(app) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as refused:
                ask(client, stream=True)
        assert (refused.value.code, refused.value.type) == ("budget_exceeded", "insufficient_quota")
        assert "frozen" in refused.value.message
        with openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as stranger:
            with pytest.raises(openai.AuthenticationError) as unknown:
                ask(stranger)
        # TokenAuth answers before any route, in the app's own shape (no type, no param).
        assert unknown.value.code == "unauthorized" and "token" in unknown.value.message


def test_a_council_that_fails_mid_stream_ends_it_with_an_error_event(settings, serve):
    council = load_members(OLLAMA_MEMBERS_FILE)
    broken = {m.name: Scripted(script=[RuntimeError("the model fell over")]) for m in council.everyone}
    council_settings = CouncilSettings(member_timeout_s=5, chair_timeout_s=5)
    app = create_app(
        AppSettings(queues=settings),
        make_responder=lambda aredis: CouncilResponder(council_settings, council, broken, aredis),
    )
    with serve(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIError) as mid_stream:
            list(ask(client, stream=True))  # the router's step went out first: the status was 200
        assert mid_stream.value.code == "council_failed" and "the model fell over" in mid_stream.value.message
        with pytest.raises(openai.InternalServerError) as whole:
            ask(client)
        assert whole.value.status_code == 502 and whole.value.code == "council_failed"
