"""The built-in language model through a real LLM-only worker (`WORKER_QUEUES=llm`, SmolLM2-135M-
Instruct, transformers, CPU) and a Redis of its own: time to first token and tokens per second for
the same three prompts one at a time and in one batch of 3 (enqueued together, so the worker takes
them together), and what a generation job adds per token on Redis (its stop check, its token event).
Then the three enqueued `--gap-ms` apart, as a council's members are (the worker has begun the
first when the others arrive), on that worker (they join its batch between two tokens) and on one
started with `WORKER_LLM_JOIN_TOKENS=0` (they wait for it): `llm_staggered_3`.

    .venv-app/bin/python -m bench.generation [--threads N] [--max-tokens N]

Prints one JSON object. Times are measured where the app is: from the enqueue to the first `token`
event's creation (the worker stamps each event) and to `generated`; the worker's own figures (from
its decode loop) come beside them. Greedy decoding, prompts that ask for long answers; a sequence
may still end before `max_tokens` (the counts are printed). Compare only within one run.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from queues import EventPublisher, JobClient, JobEvents, QueueSettings, replay
from shared_schemas import ChatMessage, EventType, GenerationJob, payloads

from .procs import ROOT, percentile, private_redis, process

PROMPTS = (
    "Write a long story about a dragon who learns to cook.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy city market, with every sound and smell.",
)


def job(n: int, prompt: str, max_tokens: int) -> GenerationJob:
    job_id = f"bench-{n}-{os.urandom(3).hex()}"
    messages = [ChatMessage(role="user", content=prompt)]
    return GenerationJob(
        session_id="bench", job_id=job_id, messages=messages, max_tokens=max_tokens, reply_to=f"llm-{job_id}"
    )


def ended(conn, settings: QueueSettings, jobs: list[GenerationJob], enqueued: datetime, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        streams = [replay(conn, settings, j.stream) for j in jobs]
        if all(events and events[-1].type is EventType.GENERATED for events in streams):
            break
        time.sleep(0.02)
    else:
        raise RuntimeError("the generations did not end")
    first = [(next(e for e in s if e.type is EventType.TOKEN).time - enqueued).total_seconds() for s in streams]
    last = max((s[-1].time - enqueued).total_seconds() for s in streams)
    ends = [s[-1].payload for s in streams]
    assert all(isinstance(e, payloads.Generated) for e in ends), ends
    done = [e for e in ends if isinstance(e, payloads.Generated)]
    return {
        "first_token_ms": [round(t * 1000) for t in first],
        "worker_first_token_ms": [e.first_token_ms for e in done],
        "worker_tokens_per_s_each": [e.tokens_per_s for e in done],
        "output_tokens": [e.output_tokens for e in done],
        "texts": [e.text for e in done],
        "wall_s": round(last, 2),
        "tokens_per_s_all": round(sum(e.output_tokens for e in done) / last, 2),
    }


def staggered(conn, settings: QueueSettings, client: JobClient, max_tokens: int, gap_ms: float) -> dict:
    """The three prompts enqueued one by one, `gap_ms` apart; each one's first token and the total."""
    jobs = [job(n, prompt, max_tokens) for n, prompt in enumerate(PROMPTS)]
    at = datetime.now().astimezone()
    for one in jobs:
        client.enqueue(one)
        time.sleep(gap_ms / 1000)
    got = ended(conn, settings, jobs, at)
    return {k: v for k, v in got.items() if k != "texts"} | {"_texts": got["texts"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--worker-python", default=str(ROOT / ".venv-worker/bin/python"))
    args = parser.parse_args()
    with private_redis() as url, tempfile.TemporaryDirectory(prefix="council-bench-llm-") as tmp:
        settings = QueueSettings(redis_url=url)
        env = {**os.environ, "COUNCIL_REDIS_URL": url, "WORKER_QUEUES": "llm", "WORKER_LLM_BATCH": "4"}
        env |= {"WORKER_THREADS": str(args.threads), "WORKER_LISTENERS": "0", "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        worker = [args.worker_python, "-m", "voice_worker", "--log-level", "INFO"]
        with process(worker, env, ready="worker ready", log=Path(tmp) / "worker.log", wait_s=600):
            load_s = time.perf_counter() - started
            conn = settings.connect()
            client = JobClient(settings, conn)
            warm = job(0, PROMPTS[0], 8)
            client.enqueue(warm)
            ended(conn, settings, [warm], datetime.now().astimezone())
            alone = []
            for n, prompt in enumerate(PROMPTS):
                one = job(n, prompt, args.max_tokens)
                at = datetime.now().astimezone()
                client.enqueue(one)
                alone.append(ended(conn, settings, [one], at))
            batch = [job(n, prompt, args.max_tokens) for n, prompt in enumerate(PROMPTS)]
            at = datetime.now().astimezone()
            asyncio.run(client.aenqueue_all(batch))  # one transaction: the worker takes all three
            three = ended(conn, settings, batch, at)
            # What each token step costs on Redis: the stop check (one pipelined EXISTS for every
            # sequence running) and a token event (one script call).
            checks = {}
            for n in (1, 3):
                keys = [settings.cancel_key(j.job_id) for j in batch[:n]]
                spent = []
                for _ in range(args.checks):
                    t = time.perf_counter()
                    with conn.pipeline(transaction=False) as pipe:
                        for key in keys:
                            pipe.exists(key)
                        pipe.execute()
                    spent.append((time.perf_counter() - t) * 1e6)
                checks[f"batch_{n}"] = {"p50_us": round(percentile(spent, 50)), "p99_us": round(percentile(spent, 99))}
            probe, publish = JobEvents(EventPublisher(settings, conn), "bench-probe", "probe"), []
            for _ in range(args.checks):
                t = time.perf_counter()
                probe.emit(payloads.Token(text=" word", member=None))
                publish.append((time.perf_counter() - t) * 1e6)
            joined = staggered(conn, settings, client, args.max_tokens, args.gap_ms)
        alone_env = env | {"WORKER_LLM_JOIN_TOKENS": "0"}
        with process(worker, alone_env, ready="worker ready", log=Path(tmp) / "worker-0.log", wait_s=600):
            warm = job(0, PROMPTS[0], 8)
            client.enqueue(warm)
            ended(conn, settings, [warm], datetime.now().astimezone())
            waited = staggered(conn, settings, client, args.max_tokens, args.gap_ms)
    one_at_a_time = {
        "first_token_ms": [a["first_token_ms"][0] for a in alone],
        "worker_first_token_ms": [a["worker_first_token_ms"][0] for a in alone],
        "worker_tokens_per_s_each": [a["worker_tokens_per_s_each"][0] for a in alone],
        "output_tokens": [a["output_tokens"][0] for a in alone],
        "wall_s": round(sum(a["wall_s"] for a in alone), 2),
    }
    one_at_a_time["tokens_per_s_all"] = round(sum(one_at_a_time["output_tokens"]) / one_at_a_time["wall_s"], 2)
    step_ms = 1000 / max(min(three["worker_tokens_per_s_each"]), 1e-9)
    print(
        json.dumps(
            {
                "llm_model": "builtin: SmolLM2-135M-Instruct Q4_1 (de-quantized to fp32)",
                "llm_threads": args.threads,
                "llm_worker_start_s": round(load_s, 1),
                "llm_batch_1": one_at_a_time,
                "llm_batch_3": {k: v for k, v in three.items() if k != "texts"},
                "llm_batch_3_same_text_as_alone": three["texts"] == [a["texts"][0] for a in alone],
                "llm_stop_check_us": checks,
                "llm_token_event_us": {"p50": round(percentile(publish, 50)), "p99": round(percentile(publish, 99))},
                "llm_stop_check_share_of_a_batch_3_step": round(checks["batch_3"]["p50_us"] / 1000 / step_ms, 4),
                "llm_staggered_3": {
                    "gap_ms": args.gap_ms,
                    "joined": {k: v for k, v in joined.items() if k != "_texts"},
                    "not_joined": {k: v for k, v in waited.items() if k != "_texts"},
                    "same_text": joined["_texts"] == waited["_texts"] == [a["texts"][0] for a in alone],
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
