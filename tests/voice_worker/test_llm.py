"""The built-in language model (SmolLM2-135M-Instruct from its package, through transformers) and the
generation job run by a real VoiceWorker in this process, on the test Redis. One model load here."""

import threading
import time
import uuid
from pathlib import Path

import pytest
import torch
from rq.job import Job
from rq.serializers import JSONSerializer
from transformers import LlamaConfig, LlamaForCausalLM

from billing import Ledger
from queues import JobClient, QueueSettings, replay
from shared_schemas import ChatMessage, EventType, GenerationJob
from voice_worker import context
from voice_worker.engines import Engines, load_engines
from voice_worker.errors import EngineLoadError
from voice_worker.llm import Request
from voice_worker.llm.hf import TransformersLLM
from voice_worker.llm.models import builtin, find
from voice_worker.llm.prefixes import Prefixes
from voice_worker.settings import WorkerSettings
from voice_worker.worker import VoiceWorker

QUESTIONS = ("What is the capital of France?", "Name three colors.", "Write a haiku about the sea.")


@pytest.fixture(scope="module")
def llm() -> TransformersLLM:
    files = builtin()
    return TransformersLLM(files, device="cpu", threads=1, max_batch=4)


def ask(question: str, max_tokens: int = 24, **options) -> Request:
    return Request([ChatMessage(role="user", content=question)], max_tokens=max_tokens, **options)


@pytest.fixture(scope="module")
def alone(llm: TransformersLLM) -> list:
    return [llm.generate(ask(q)) for q in QUESTIONS]


def test_the_answer_streams_in_pieces_and_counts_its_tokens(llm: TransformersLLM):
    pieces: list[str] = []
    started = time.perf_counter()
    result = llm.generate(ask(QUESTIONS[0]), on_piece=pieces.append)
    assert len(pieces) >= 3 and "".join(pieces) == result.text
    assert "Paris" in result.text
    assert result.input_tokens == len(llm.prompt(ask(QUESTIONS[0]))) > 10
    # Every piece came from at least one token; the end-of-message token is counted too.
    assert len(pieces) < result.output_tokens <= 24 and result.finish_reason == "stop"
    assert 0 < result.first_token_ms < (time.perf_counter() - started) * 1000 and result.tokens_per_s > 0


def test_an_answer_that_reaches_max_tokens_ends_length(llm: TransformersLLM, alone: list):
    result = llm.generate(ask(QUESTIONS[2], max_tokens=5))
    assert result.finish_reason == "length" and result.output_tokens == 5
    assert alone[2].text.startswith(result.text)


def test_three_requests_in_one_batch_decode_what_each_decodes_alone(llm: TransformersLLM, alone: list):
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    together = llm.generate_many([ask(q) for q in QUESTIONS], lambda i, text: pieces[i].append(text))
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.output_tokens for r in together] == [r.output_tokens for r in alone]
    assert [r.finish_reason for r in together] == [r.finish_reason for r in alone] == ["stop", "stop", "length"]
    assert ["".join(pieces[i]) for i in range(3)] == [r.text for r in alone]


def test_a_stop_ends_its_sequence_at_the_next_token_and_the_others_go_on(llm: TransformersLLM, alone: list):
    asked: list[list[int]] = []

    def stopped(active):
        asked.append(list(active))
        # Asked before the first forward pass, then after each token: the 5th time, after the 4th.
        return [1] if len(asked) == 5 and 1 in active else []

    together = llm.generate_many([ask(q) for q in QUESTIONS], stopped=stopped)
    assert together[1].finish_reason == "cancelled" and together[1].output_tokens == 4
    assert alone[1].text.startswith(together[1].text) and together[1].text
    assert [together[0].text, together[2].text] == [alone[0].text, alone[2].text]
    assert all(1 not in active for active in asked[5:])


def test_requests_that_join_a_batch_under_way_decode_what_each_decodes_alone(llm: TransformersLLM, alone: list):
    assert llm.capabilities.joins
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    rooms: list[int] = []

    def join(room: int) -> list[Request]:
        rooms.append(room)
        # Asked before each forward pass: the second joins after the first's 3rd token, the third
        # after its 6th, while the others decode.
        return {4: [ask(QUESTIONS[1])], 7: [ask(QUESTIONS[2])]}.get(len(rooms), [])

    started = time.perf_counter()
    together = llm.generate_many([ask(QUESTIONS[0])], lambda i, text: pieces[i].append(text), join=join)
    took_ms = (time.perf_counter() - started) * 1000
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.output_tokens for r in together] == [r.output_tokens for r in alone]
    assert ["".join(pieces[i]) for i in range(3)] == [r.text for r in alone]
    assert rooms[:7] == [3, 3, 3, 3, 2, 2, 2]  # the room left in the engine's 4
    # Each counts its first token from when it joined.
    assert together[2].first_token_ms < took_ms - together[0].first_token_ms


def test_a_joined_request_stops_on_its_own_and_the_batch_goes_on(llm: TransformersLLM, alone: list):
    asked: list[list[int]] = []

    def stopped(active):
        asked.append(list(active))
        return [1] if 1 in active and sum(1 in a for a in asked) == 3 else []

    joins: list[int] = []

    def join(room: int) -> list[Request]:
        joins.append(room)
        return [ask(QUESTIONS[1])] if len(joins) == 3 else []  # after the first's 2nd token

    together = llm.generate_many([ask(QUESTIONS[0])], stopped=stopped, join=join)
    # Asked before its forward pass, after its first token, after its second: it ends there.
    assert together[1].finish_reason == "cancelled" and together[1].output_tokens == 2
    assert alone[1].text.startswith(together[1].text) and together[1].text
    assert together[0].text == alone[0].text
    assert sum(1 in active for active in asked) == 3


def test_a_prompt_that_begins_like_one_read_before_is_read_from_where_they_part(llm: TransformersLLM):
    persona = ChatMessage(role="system", content="You are Max, the chair of a small council. Answer briefly.")
    first = Request([persona, ChatMessage(role="user", content=QUESTIONS[0])], max_tokens=12)
    said = ChatMessage(role="assistant", content="The capital of France is Paris.")
    follow = Request([*first.messages, said, ChatMessage(role="user", content=QUESTIONS[1])], max_tokens=12)
    kept, llm.prefixes = llm.prefixes, Prefixes(0)
    try:
        cold = llm.generate(follow)  # read whole
    finally:
        llm.prefixes = kept
    llm.generate(first)
    shared, _ = llm.prefixes.find(llm.prompt(follow)) or (0, None)
    assert shared == len(llm.prompt(first)) < len(llm.prompt(follow))  # the whole first prompt
    warm = llm.generate(follow)
    assert (warm.text, warm.output_tokens, warm.input_tokens) == (cold.text, cold.output_tokens, cold.input_tokens)


def test_a_stop_string_ends_the_answer_before_it(llm: TransformersLLM, alone: list):
    result = llm.generate(ask(QUESTIONS[0], stop=("Paris",)))
    assert result.finish_reason == "stop" and "Paris" in alone[0].text
    assert result.text == alone[0].text[: alone[0].text.index("Paris")]


def test_sampling_at_a_temperature_answers(llm: TransformersLLM):
    torch.manual_seed(1)
    results = llm.generate_many([ask(QUESTIONS[0], temperature=1.5), ask(QUESTIONS[0])])
    assert all(r.output_tokens > 0 for r in results)


def test_more_requests_than_the_engine_takes_are_refused(llm: TransformersLLM):
    with pytest.raises(ValueError, match="1 to 4"):
        llm.generate_many([ask("hi")] * 5)


def test_a_hugging_face_folder_under_model_dir_llm_loads_with_its_chat_template(llm: TransformersLLM, tmp_path: Path):
    folder = tmp_path / "llm" / "tiny"
    eos = llm.tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(llm.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, eos_token_id=eos,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    llm.tokenizer.save_pretrained(folder)
    files = find("tiny", tmp_path)
    assert files.folder == folder and files.gguf_file is None
    tiny = TransformersLLM(files, model="tiny", device="cpu", max_batch=2)
    results = tiny.generate_many([ask("hi", max_tokens=6), ask("hello there", max_tokens=3)])
    assert [r.output_tokens <= n for r, n in zip(results, (6, 3), strict=True)] == [True, True]
    assert tiny.model == "tiny" and tiny.capabilities.device == "cpu"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda root: None, "MODEL_DIR/llm/big: set MODEL_DIR"),
        (lambda root: root.mkdir(), "does not exist: put the language model 'big' there"),
        (lambda root: (root / "llm" / "big").mkdir(parents=True), "holds no config.json and no .gguf file"),
    ],
)
def test_a_missing_model_is_named_at_start(make, says, tmp_path: Path):
    root = tmp_path / "models"
    make(root)
    with pytest.raises(EngineLoadError, match=says):
        find("big", root if root.exists() else None)


def test_on_the_cpu_a_worker_decodes_in_int8_unless_told_not_to(llm: TransformersLLM, settings: QueueSettings):
    """The default (WORKER_LLM_QUANTIZE=int8): every linear layer int8, answering as fp32 does in
    substance (a 135M model's int8 and fp32 words may part after the first few); `none`: fp32."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    built = load_engines(WorkerSettings(queues=settings, queues_served=("llm",))).llms["builtin"]
    assert isinstance(built, TransformersLLM) and built.quantized
    layers = [m for m in built.llm.modules() if isinstance(m, torch.nn.Linear | Int8Linear)]
    assert layers and all(isinstance(m, Int8Linear) for m in layers), {type(m).__name__ for m in layers}
    pieces: list[str] = []
    result = built.generate(ask(QUESTIONS[0]), on_piece=pieces.append)
    assert "Paris" in result.text and "".join(pieces) == result.text and result.finish_reason == "stop"
    assert result.input_tokens == len(llm.prompt(ask(QUESTIONS[0])))
    # A batch, a stop string, and a prompt read from a kept beginning all run on the int8 layers.
    together = built.generate_many([ask(q) for q in QUESTIONS])
    assert [r.finish_reason in ("stop", "length") and r.output_tokens > 0 for r in together] == [True] * 3
    assert "Paris" in together[0].text
    again = built.generate(ask(QUESTIONS[0]))
    assert "Paris" in again.text  # the same prompt, read from its kept states
    assert not llm.quantized and not any(isinstance(m, Int8Linear) for m in llm.llm.modules())
    fp32 = WorkerSettings.from_env({"WORKER_LLM_QUANTIZE": "none"})
    assert fp32.llm_quantize == "none"


def test_a_worker_on_llm_alone_loads_no_voice_engine(llm: TransformersLLM, settings: QueueSettings, monkeypatch):
    monkeypatch.setattr("voice_worker.engines._load_llm", lambda name, files, s: llm)
    engines = load_engines(WorkerSettings(queues=settings, queues_served=("llm",)))
    assert engines.stt is None and engines.tts == [] and engines.vad is None and engines.turn is None
    assert engines.llms == {"builtin": llm}


# -- the job, run by a real worker in this process ----------------------------------------------


def generation(queues: QueueSettings, question: str, n: int, **fields) -> GenerationJob:
    session = f"{queues.key_prefix}-s{n}"
    return GenerationJob(
        session_id=session,
        job_id=f"{session}-gen",
        messages=[ChatMessage(role="user", content=question)],
        member="ada",
        reply_to=f"llm-{session}-gen",
        max_tokens=24,
        **fields,
    )


def run_worker(queues: QueueSettings, connection, llm: TransformersLLM, **settings) -> VoiceWorker:
    worker_settings = WorkerSettings(queues=queues, queues_served=(queues.llm_queue,), **settings)
    worker = VoiceWorker(worker_settings, Engines(llms={"builtin": llm}), connection=connection)
    try:
        worker.work(burst=True)
    finally:
        context.install(None)  # type: ignore[arg-type]
    return worker


def test_waiting_generations_are_decoded_together_each_ending_as_its_own_job(
    llm: TransformersLLM, alone: list, own: QueueSettings, connection
):
    client = JobClient(own, connection)
    payloads = [generation(own, q, n) for n, q in enumerate(QUESTIONS)]
    for payload in payloads:
        client.enqueue(payload)
    worker = run_worker(own, connection, llm, llm_batch=4)
    for payload, expected in zip(payloads, alone, strict=True):
        assert replay(connection, own, payload.session_id) == []  # nothing on the page's stream
        events = replay(connection, own, payload.stream)
        *tokens, end = events
        assert [e.type for e in tokens] == [EventType.TOKEN] * len(tokens) and end.type is EventType.GENERATED
        assert [e.seq for e in events] == list(range(len(events))) and {e.job_id for e in events} == {payload.job_id}
        assert all(e.payload.member == "ada" for e in tokens)
        assert "".join(e.payload.text for e in tokens) == end.payload.text == expected.text
        assert end.payload.output_tokens == expected.output_tokens
        assert end.payload.input_tokens == expected.input_tokens
        assert end.payload.model == "builtin" and end.payload.engine == "transformers"
        assert end.payload.finish_reason == expected.finish_reason and end.payload.first_token_ms > 0
        job = Job.fetch(payload.job_id, connection=connection, serializer=JSONSerializer)
        assert job.get_status() == "finished" and job.return_value() == end.payload.model_dump(mode="json")
    assert not connection.llen(f"{own.key_prefix}:inflight:{worker.name}")
    entries = {e["ref"]: e for e in Ledger(connection, own.key_prefix).entries()}
    charged = [entries[p.job_id] for p in payloads]
    assert all(e["kind"] == "llm" and e["item"] == "builtin" for e in charged)
    assert all(e["note"] == "batched with 2 other generations" and e["cpu_ms"] > 0 for e in charged), charged
    assert not any(e.get("input_tokens") or e.get("output_tokens") for e in charged)  # the app counts tokens


def test_generations_enqueued_while_a_batch_decodes_join_it_and_decode_what_they_would_alone(
    llm: TransformersLLM, alone: list, own: QueueSettings, connection
):
    client = JobClient(own, connection)
    first, *later = [generation(own, q, 20 + n) for n, q in enumerate((QUESTIONS[2], QUESTIONS[0], QUESTIONS[1]))]
    client.enqueue(first)

    def enqueue_after_two_tokens() -> None:
        deadline = time.monotonic() + 60
        while len(replay(connection, own, first.stream)) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        for payload in later:
            client.enqueue(payload)

    late = threading.Thread(target=enqueue_after_two_tokens)
    late.start()
    run_worker(own, connection, llm, llm_batch=4, llm_join_tokens=1000)
    late.join(5)
    streams = {p.job_id: replay(connection, own, p.stream) for p in (first, *later)}
    for payload, expected in zip((first, *later), (alone[2], alone[0], alone[1]), strict=True):
        *tokens, end = streams[payload.job_id]
        assert end.type is EventType.GENERATED and end.payload.text == expected.text
        assert "".join(e.payload.text for e in tokens) == expected.text
        assert end.payload.output_tokens == expected.output_tokens
    # They joined the first while it decoded: their tokens came out before its last one.
    last_of_first = streams[first.job_id][-2].time
    assert all(streams[p.job_id][0].time < last_of_first for p in later)
    entries = {e["ref"]: e for e in Ledger(connection, own.key_prefix).entries()}
    assert [entries[p.job_id]["note"] for p in (first, *later)] == ["batched with 2 other generations"] * 3


def test_a_generation_asked_to_stop_ends_within_a_token_cancelled_with_its_counts(
    llm: TransformersLLM, own: QueueSettings, connection
):
    client = JobClient(own, connection)
    payload = generation(own, "Tell me a long story about a dragon.", 9).model_copy(update={"max_tokens": 400})
    client.enqueue(payload)
    seen: dict[str, int] = {}

    def stop_after_three_tokens() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = replay(connection, own, payload.stream)
            if len(events) >= 3:
                seen["outcome"] = client.stop(payload.job_id)  # type: ignore[assignment]
                seen["tokens"] = len(replay(connection, own, payload.stream))
                return
            time.sleep(0.005)

    stopper = threading.Thread(target=stop_after_three_tokens)
    stopper.start()
    run_worker(own, connection, llm)
    stopper.join(5)
    *tokens, end = replay(connection, own, payload.stream)
    assert seen["outcome"] == "stopping"
    assert end.type is EventType.GENERATED and end.payload.finish_reason == "cancelled"
    # The token being decoded when the stop came may still go out; none after it.
    assert seen["tokens"] <= len(tokens) <= seen["tokens"] + 1
    assert len(tokens) <= end.payload.output_tokens <= len(tokens) + 2 < 400
    assert "".join(e.payload.text for e in tokens) == end.payload.text
    assert not connection.exists(own.cancel_key(payload.job_id))


def test_a_model_the_worker_does_not_serve_fails_the_job_as_data(llm: TransformersLLM, own: QueueSettings, connection):
    client = JobClient(own, connection)
    payload = generation(own, "hi", 7, model=f"nope-{uuid.uuid4().hex[:4]}")
    client.enqueue(payload)
    run_worker(own, connection, llm)
    (failed,) = replay(connection, own, payload.stream)
    assert failed.type is EventType.FAILED and failed.payload.code == "model_not_found"
    assert "Models: builtin" in failed.payload.message


def test_a_conversation_longer_than_the_model_reads_fails_text_too_long(
    llm: TransformersLLM, own: QueueSettings, connection
):
    long = [ChatMessage(role="user", content="word " * 6000), ChatMessage(role="assistant", content="word " * 6000)]
    payload = generation(own, "hi", 8).model_copy(update={"messages": [*long, ChatMessage(role="user", content="hi")]})
    assert llm.prompt_tokens(Request(payload.messages)) >= llm.capabilities.context_tokens
    with pytest.raises(ValueError, match="leave no room"):
        llm.generate_many([Request(payload.messages)])
    JobClient(own, connection).enqueue(payload)
    run_worker(own, connection, llm)
    (failed,) = replay(connection, own, payload.stream)
    assert failed.type is EventType.FAILED and failed.payload.code == "text_too_long"
    assert f"reads at most {llm.capabilities.context_tokens}" in failed.payload.message
