"""Language models through Hugging Face transformers: the built-in SmolLM2 and models from MODEL_DIR.

The model is loaded once (a Hugging Face folder, or a `.gguf` file, which transformers
de-quantizes: the built-in SmolLM2-135M-Instruct Q4_1 becomes 134.5 M fp32 parameters); bf16 (or
fp16) on CUDA, fp32 on the CPU. The prompt is the model's own chat template.

Decoding is our loop over the model's forward pass with a KV cache, not `generate()`, so that each
sequence streams its pieces as they are decoded and ends on its own. Several requests go in one
batch: left-padded prompts with an attention mask and positions counted from each prompt's first
real token; one forward pass per step yields the next token of every sequence still running. A
sequence that ends leaves the batch (its rows of the cache are dropped), so the others go on at
the cost of a smaller batch. Greedy when the temperature is 0 or None, else sampled at it.
"""

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from ..errors import EngineLoadError
from .base import LLM, FinishReason, Generated, LLMCapabilities, Request, _never, _no_piece
from .models import ModelFiles
from .stream import TextStream

log = logging.getLogger(__name__)
transformers.utils.logging.disable_progress_bar()


@dataclass
class _Sequence:
    index: int
    request: Request
    stream: TextStream
    input_tokens: int
    tokens: int = 0
    first_at: float | None = None
    last_at: float | None = None
    finish: FinishReason | None = None


class TransformersLLM(LLM):
    name = "transformers"

    def __init__(
        self,
        files: ModelFiles,
        model: str = "builtin",
        device: str = "auto",
        threads: int | None = None,
        max_batch: int = 8,
    ) -> None:
        """`files`: a Hugging Face model folder, or a GGUF file in a folder."""
        path, gguf_file = files.folder, files.gguf_file
        if threads is not None:
            torch.set_num_threads(threads)
        resolved = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if resolved.startswith("cuda") and not torch.cuda.is_available():
            raise EngineLoadError(f"WORKER_DEVICE={device} but torch sees no CUDA device")
        dtype = torch.float32
        if resolved.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        started = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file, local_files_only=True)
            self.llm = AutoModelForCausalLM.from_pretrained(
                path, gguf_file=gguf_file, dtype=dtype, local_files_only=True
            ).to(resolved)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) reads to mypy as unbound
        except (OSError, ValueError, ImportError) as exc:
            raise EngineLoadError(f"cannot load the language model {model!r} from {files.path}: {exc}") from exc
        self.llm.eval()
        if not self.tokenizer.chat_template:
            raise EngineLoadError(f"the language model {model!r} at {path} has no chat template")
        eos = self.llm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos = frozenset(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else min(self.eos, default=0)
        self.model = model
        self.device = resolved
        context = int(getattr(self.llm.config, "max_position_embeddings", 0) or 2048)
        self.capabilities = LLMCapabilities(batches=True, max_batch=max_batch, device=resolved, context_tokens=context)
        log.info(
            "language model %s loaded from %s in %.1f s: %s, %.1f M parameters, %s on %s",
            model,
            files.path,
            time.perf_counter() - started,
            type(self.llm).__name__,
            sum(p.numel() for p in self.llm.parameters()) / 1e6,
            dtype,
            resolved,
        )

    def prompt(self, request: Request) -> list[int]:
        """The request's messages in the model's chat template, ready for the assistant's answer."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        return list(ids)

    def prompt_tokens(self, request: Request) -> int:
        return len(self.prompt(request))

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def generate_many(
        self,
        requests: Sequence[Request],
        on_piece: Callable[[int, str], None] = _no_piece,
        stopped: Callable[[Sequence[int]], Collection[int]] = _never,
    ) -> list[Generated]:
        if not 0 < len(requests) <= self.capabilities.max_batch:
            raise ValueError(f"{len(requests)} requests; this engine takes 1 to {self.capabilities.max_batch} at once")
        started = time.perf_counter()
        prompts = [self.prompt(r) for r in requests]
        context = self.capabilities.context_tokens
        if too_long := [i for i, p in enumerate(prompts) if len(p) >= context]:
            raise ValueError(f"the prompts of requests {too_long} leave no room in the model's {context} tokens")
        seqs = [
            _Sequence(i, r, TextStream(self._decode, r.stop), len(p))
            for i, (r, p) in enumerate(zip(requests, prompts, strict=True))
        ]
        with torch.inference_mode():
            self._run(seqs, prompts, on_piece, stopped, started)
        done = time.perf_counter()
        return [_outcome(s, started, done) for s in seqs]

    def _run(
        self,
        seqs: list[_Sequence],
        prompts: list[list[int]],
        on_piece: Callable[[int, str], None],
        stopped: Callable[[Sequence[int]], Collection[int]],
        started: float,
    ) -> None:
        for index in stopped([s.index for s in seqs]):  # cancelled before the first forward pass
            seqs[index].finish = "cancelled"
        active = [s for s in seqs if s.finish is None]
        if not active:
            return
        width = max(len(prompts[s.index]) for s in active)
        ids = torch.full((len(active), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(active), width), dtype=torch.long)
        for row, s in enumerate(active):
            prompt = prompts[s.index]
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        cache = DynamicCache(config=self.llm.config)
        greedy = all(not s.request.temperature for s in active)
        out = self.llm(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        last = positions[:, -1]
        while True:
            logits = out.logits[:, -1, :].float()
            chosen = logits.argmax(-1) if greedy else self._sample(logits, active)
            tokens = chosen.tolist()
            now = time.perf_counter()
            for s, token in zip(active, tokens, strict=True):
                self._step(s, token, now, on_piece)
            running = [s.index for s in active if s.finish is None]
            for index in stopped(running) if running else ():
                s = seqs[index]
                if s.finish is None:
                    s.finish = "cancelled"
                    _send(on_piece, s, s.stream.flush())
            keep = [row for row, s in enumerate(active) if s.finish is None]
            if not keep:
                return
            if len(keep) < len(active):
                rows = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(rows)
                mask, last, chosen = mask[rows], last[rows], chosen[rows]
                active = [active[row] for row in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            last = last + 1
            out = self.llm(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=last[:, None],
                past_key_values=cache,
                use_cache=True,
            )

    def _step(self, s: _Sequence, token: int, now: float, on_piece: Callable[[int, str], None]) -> None:
        s.tokens += 1
        s.first_at = s.first_at or now
        s.last_at = now
        if token in self.eos:
            s.finish = "stop"
            _send(on_piece, s, s.stream.flush())
            return
        _send(on_piece, s, s.stream.push(token))
        if s.stream.stopped:
            s.finish = "stop"
        elif s.tokens >= min(s.request.max_tokens, self.capabilities.context_tokens - s.input_tokens):
            s.finish = "length"
            _send(on_piece, s, s.stream.flush())

    def _sample(self, logits: torch.Tensor, active: list[_Sequence]) -> torch.Tensor:
        temps = torch.tensor([s.request.temperature or 0.0 for s in active], device=logits.device)
        greedy = logits.argmax(-1)
        scaled = logits / temps.clamp(min=1e-5)[:, None]
        sampled = torch.multinomial(torch.softmax(scaled, dim=-1), 1)[:, 0]
        return torch.where(temps > 0, sampled, greedy)


def _send(on_piece: Callable[[int, str], None], s: _Sequence, piece: str) -> None:
    if piece:
        on_piece(s.index, piece)


def _outcome(s: _Sequence, started: float, done: float) -> Generated:
    first_ms = ((s.first_at or done) - started) * 1000
    rate = 0.0
    if s.tokens > 1 and s.first_at is not None and s.last_at is not None and s.last_at > s.first_at:
        rate = (s.tokens - 1) / (s.last_at - s.first_at)
    return Generated(
        text=s.stream.sent,
        input_tokens=s.input_tokens,
        output_tokens=s.tokens,
        finish_reason=s.finish or "cancelled",
        first_token_ms=round(first_ms, 1),
        tokens_per_s=round(rate, 2),
    )
