"""The built-in language model (SmolLM2-135M-Instruct, transformers, CPU): time to first token and
tokens per second alone and in a batch of 3 (the same prompts), and what a generation job adds per
token on Redis (its stop check, its token events). Run with the worker's interpreter:

    .venv-worker/bin/python -m bench.llm [--threads N] [--max-tokens N]

Prints one JSON object. Greedy decoding, prompts that ask for long answers; a sequence may still
end before `max_tokens` (the counts are printed; rates are per token decoded). Compare figures
only within one run: the machine's other work moves them.
"""

import argparse
import json
import statistics
import time

from bench.procs import percentile, private_redis
from queues import EventPublisher, JobEvents, QueueSettings
from shared_schemas import ChatMessage, GenerationJob
from voice_worker import generation
from voice_worker.llm import Request
from voice_worker.llm.hf import TransformersLLM
from voice_worker.llm.models import builtin

PROMPTS = (
    "Write a long story about a dragon who learns to cook.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy city market, with every sound and smell.",
)


def summary(results, wall_s: float) -> dict:
    return {
        "first_token_ms": [r.first_token_ms for r in results],
        "tokens_per_s_each": [r.tokens_per_s for r in results],
        "output_tokens": [r.output_tokens for r in results],
        "wall_s": round(wall_s, 2),
        "tokens_per_s_all": round(sum(r.output_tokens for r in results) / wall_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    files = builtin()
    started = time.perf_counter()
    llm = TransformersLLM(files.folder, gguf_file=files.gguf_file, device="cpu", threads=args.threads, max_batch=4)
    load_s = time.perf_counter() - started
    requests = [Request([ChatMessage(role="user", content=p)], max_tokens=args.max_tokens) for p in PROMPTS]
    llm.generate(requests[0])  # warm
    t = time.perf_counter()
    alone = [llm.generate(r) for r in requests]
    one = summary(alone, time.perf_counter() - t)
    t = time.perf_counter()
    together = llm.generate_many(requests)
    three = summary(together, time.perf_counter() - t)
    same = [a.text for a in alone] == [b.text for b in together]

    with private_redis() as url:
        settings = QueueSettings(redis_url=url, key_prefix="bench-llm")
        conn = settings.connect()
        jobs = [
            GenerationJob(session_id=f"s{i}", job_id=f"j{i}", messages=r.messages, max_tokens=args.max_tokens)
            for i, r in enumerate(requests)
        ]
        publisher = EventPublisher(settings, conn)
        # The stop check as a job does it: one pipelined EXISTS per step, for every sequence running.
        checks = {}
        for n in (1, 3):
            keys = [settings.cancel_key(j.job_id) for j in jobs[:n]]
            spent = []
            for _ in range(args.checks):
                t = time.perf_counter()
                with conn.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.exists(key)
                    pipe.execute()
                spent.append((time.perf_counter() - t) * 1e6)
            checks[f"batch_{n}"] = {"p50_us": round(percentile(spent, 50)), "p99_us": round(percentile(spent, 99))}
        # The whole job path (token events published, stop checked) against the engine alone.
        events = [JobEvents(publisher, j.stream, j.job_id) for j in jobs]
        t = time.perf_counter()
        jobbed = generation.generate_together(jobs, events, llm, conn, settings)
        job_path = summary(jobbed, time.perf_counter() - t)
        publish = []
        probe = JobEvents(publisher, "probe", "probe")
        for _ in range(args.checks):
            t = time.perf_counter()
            probe.emit("token", {"text": " word", "member": None})  # type: ignore[arg-type]
            publish.append((time.perf_counter() - t) * 1e6)
        conn.close()
    step_ms = 1000 / statistics.mean(three["tokens_per_s_each"])
    print(
        json.dumps(
            {
                "llm_model": "SmolLM2-135M-Instruct Q4_1 (de-quantized to fp32)",
                "llm_threads": args.threads,
                "llm_load_s": round(load_s, 1),
                "llm_batch_1": one,
                "llm_batch_3": three,
                "llm_batch_3_same_text_as_alone": same,
                "llm_job_path_batch_3": job_path,
                "llm_stop_check_us": checks,
                "llm_token_event_us": {"p50": round(percentile(publish, 50)), "p99": round(percentile(publish, 99))},
                "llm_stop_check_share_of_a_batch_3_step": round(checks["batch_3"]["p50_us"] / 1000 / step_ms, 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
