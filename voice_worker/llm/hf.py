"""Language models through Hugging Face transformers: the built-in SmolLM2 and models from MODEL_DIR.

The model is loaded once (a Hugging Face folder, or a `.gguf` file, which transformers
de-quantizes: the built-in SmolLM2-135M-Instruct Q4_1 becomes 134.5 M fp32 parameters); bf16 (or
fp16) on CUDA, fp32 on the CPU, where its linear layers then run as int8 unless asked not to
(`quantize`: dynamic quantization, weights per output channel, FBGEMM's kernels; on 2 busy cores
2-3x the tokens a second of fp32 and a third of the prompt time). The int8 kernels quantize each
pass's activations as a whole, so a sequence decoded in a batch may part from what it decodes
alone by a token here and there; in fp32 the two are the same (tests/voice_worker/test_llm.py).
The prompt is the model's own chat template.

Decoding is our loop over the model's forward pass with a KV cache, not `generate()`, so that each
sequence streams its pieces as they are decoded and ends on its own. Several requests go in one
batch: left-padded prompts with an attention mask and positions counted from each prompt's first
real token; one forward pass per step yields the next token of every sequence still running. A
sequence that ends leaves the batch (its rows of the cache are dropped), so the others go on at
the cost of a smaller batch. Greedy when the temperature is 0 or None, else sampled at it.

Requests may join a batch under way, between two tokens (continuous batching: `join`): their
prompts are read in a forward pass of their own, each gets its first token at once, and their
rows are added to the batch's cache and mask, the shorter side padded on the left with masked
zeros, so that every row keeps its own positions and stop, and decodes what it would alone.
A prompt that begins like one read recently (the same persona, the same conversation one turn on)
is read only from where they part, on the kept states of the other (prefixes.py).
"""

import logging
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from ..errors import EngineLoadError
from .base import LLM, FinishReason, Generated, LLMCapabilities, Request, _never, _no_piece, _nobody
from .models import ModelFiles
from .prefixes import Prefixes
from .stream import TextStream

log = logging.getLogger(__name__)
transformers.utils.logging.disable_progress_bar()


@dataclass
class _Sequence:
    index: int
    request: Request
    stream: TextStream
    prompt: list[int]
    started: float  # when the call began, or when it joined one under way
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
        prefix_tokens: int = 4096,
        quantize: bool = False,
    ) -> None:
        """`files`: a Hugging Face model folder, or a GGUF file in a folder. `prefix_tokens`: how
        many tokens of prompts already read are kept to begin the next ones (prefixes.py; 0: none).
        `quantize`: on the CPU, the linear layers in int8."""
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
        parameters = sum(p.numel() for p in self.llm.parameters())
        self.quantized = quantize and resolved == "cpu"
        if self.quantized:
            _int8(self.llm)
            dtype = torch.qint8
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
        # Joining a batch under way pads its cache rows: sound for full-attention layers only (a
        # sliding window's cache keeps its own positions).
        joins = all(type(layer) is DynamicLayer for layer in DynamicCache(config=self.llm.config).layers)
        self.capabilities = LLMCapabilities(
            batches=True, max_batch=max_batch, device=resolved, context_tokens=context, joins=joins
        )
        # A prompt read from a kept beginning joins the others as a joining request does.
        self.prefixes = Prefixes(prefix_tokens if joins else 0)
        log.info(
            "language model %s loaded from %s in %.1f s: %s, %.1f M parameters, %s on %s",
            model,
            files.path,
            time.perf_counter() - started,
            type(self.llm).__name__,
            parameters / 1e6,
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
        join: Callable[[int], Sequence[Request]] = _nobody,
    ) -> list[Generated]:
        if not 0 < len(requests) <= self.capabilities.max_batch:
            raise ValueError(f"{len(requests)} requests; this engine takes 1 to {self.capabilities.max_batch} at once")
        started = time.perf_counter()
        seqs: list[_Sequence] = []
        fresh = self._add(seqs, requests, started)
        if not self.capabilities.joins:
            join = _nobody
        with torch.inference_mode():
            self._run(seqs, fresh, on_piece, stopped, join)
        done = time.perf_counter()
        return [_outcome(s, done) for s in seqs]

    def _add(self, seqs: list[_Sequence], requests: Sequence[Request], now: float) -> list[_Sequence]:
        """Number `requests` on from `seqs` (their prompts checked); the new sequences."""
        prompts = [self.prompt(r) for r in requests]
        context = self.capabilities.context_tokens
        if too_long := [len(seqs) + i for i, p in enumerate(prompts) if len(p) >= context]:
            raise ValueError(f"the prompts of requests {too_long} leave no room in the model's {context} tokens")
        fresh = [
            _Sequence(len(seqs) + i, r, TextStream(self._decode, r.stop), p, now)
            for i, (r, p) in enumerate(zip(requests, prompts, strict=True))
        ]
        seqs.extend(fresh)
        return fresh

    def _run(
        self,
        seqs: list[_Sequence],
        fresh: list[_Sequence],
        on_piece: Callable[[int, str], None],
        stopped: Callable[[Sequence[int]], Collection[int]],
        join: Callable[[int], Sequence[Request]],
    ) -> None:
        """Decode until every sequence ended: `fresh` ones are read first; before each forward pass,
        while there is room, `join` may give more, read then, which decode on with the others."""
        batch: _Batch | None = None
        while True:
            room = self.capabilities.max_batch - len(fresh) - (len(batch.seqs) if batch is not None else 0)
            if room > 0:
                fresh += self._add(seqs, join(room), time.perf_counter())
            if fresh:
                batch, fresh = self._admit(batch, fresh, on_piece, stopped), []
            if batch is None:
                return
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.seqs), 1))], dim=-1)
            batch.last = batch.last + 1
            out = self.llm(
                input_ids=batch.chosen[:, None],
                attention_mask=batch.mask,
                position_ids=batch.last[:, None],
                past_key_values=batch.cache,
                use_cache=True,
            )
            batch.chosen = self._choose(out.logits[:, -1, :], batch.seqs)
            self._emit(batch.seqs, batch.chosen, on_piece)
            self._stop_asked(batch.seqs, stopped, on_piece)
            batch = batch.keep(self.device)

    def _admit(
        self,
        batch: "_Batch | None",
        fresh: list[_Sequence],
        on_piece: Callable[[int, str], None],
        stopped: Callable[[Sequence[int]], Collection[int]],
    ) -> "_Batch | None":
        """Read the fresh sequences' prompts, give each its first token, and add those still running
        to the batch decoding (its rows of the cache and mask left-padded to one length). Prompts
        that begin like one read before are read from where they part, each in a pass of its own;
        the others together, left-padded."""
        self._stop_asked(fresh, stopped, on_piece)  # cancelled before their first forward pass
        fresh = [s for s in fresh if s.finish is None]
        misses = [s for s in fresh if self.prefixes.find(s.prompt) is None]
        groups = [misses] if misses else []
        groups += [[s] for s in fresh if s not in misses]
        reads = []
        for group in groups:  # each group's first tokens go out as soon as they are chosen
            read = self._read(group)
            read.chosen = self._choose(read.chosen, group)
            self._emit(group, read.chosen, on_piece)
            reads.append(read)
        self._stop_asked(fresh, stopped, on_piece)
        for read in reads:
            joined = read.keep(self.device)
            if joined is not None:
                if batch is None:
                    batch = joined
                else:
                    batch.merge(joined)
        return batch

    def _read(self, group: list[_Sequence]) -> "_Batch":
        """One forward pass over the group's prompts (one alone from where its kept beginning ends);
        the batch it makes holds the last logits in `chosen`, for the caller to choose from. Each
        prompt's states are kept for the prompts that will begin like it."""
        found = self.prefixes.find(group[0].prompt) if len(group) == 1 else None
        shared = found[0] if found is not None else 0
        width = max(len(s.prompt) for s in group)
        ids = torch.full((len(group), width - shared), self.pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, s in enumerate(group):
            ids[row, width - len(s.prompt) :] = torch.tensor(s.prompt[shared:])
            mask[row, width - len(s.prompt) :] = 1
        positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, shared:]
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        states = found[1] if found is not None else None
        cache = DynamicCache(ddp_cache_data=states, config=self.llm.config)
        out = self.llm(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        for row, s in enumerate(group):
            start = width - len(s.prompt)
            rows = [(keys[row : row + 1, :, start:], values[row : row + 1, :, start:]) for keys, values in _kv(cache)]
            self.prefixes.keep(s.prompt, rows)
        return _Batch(list(group), cache, mask, positions[:, -1], out.logits[:, -1, :])

    def _choose(self, logits: torch.Tensor, active: list[_Sequence]) -> torch.Tensor:
        logits = logits.float()
        if all(not s.request.temperature for s in active):
            return logits.argmax(-1)
        return self._sample(logits, active)

    def _emit(self, active: list[_Sequence], chosen: torch.Tensor, on_piece: Callable[[int, str], None]) -> None:
        now = time.perf_counter()
        for s, token in zip(active, chosen.tolist(), strict=True):
            self._step(s, token, now, on_piece)

    def _stop_asked(
        self,
        active: Sequence[_Sequence],
        stopped: Callable[[Sequence[int]], Collection[int]],
        on_piece: Callable[[int, str], None],
    ) -> None:
        """Ask which running sequences must stop; they end `cancelled` with what they wrote."""
        running = [s.index for s in active if s.finish is None]
        by_index = {s.index: s for s in active}
        for index in stopped(running) if running else ():
            s = by_index.get(index)
            if s is not None and s.finish is None:
                s.finish = "cancelled"
                _send(on_piece, s, s.stream.flush())

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
        elif s.tokens >= min(s.request.max_tokens, self.capabilities.context_tokens - len(s.prompt)):
            s.finish = "length"
            _send(on_piece, s, s.stream.flush())

    def _sample(self, logits: torch.Tensor, active: list[_Sequence]) -> torch.Tensor:
        temps = torch.tensor([s.request.temperature or 0.0 for s in active], device=logits.device)
        greedy = logits.argmax(-1)
        scaled = logits / temps.clamp(min=1e-5)[:, None]
        sampled = torch.multinomial(torch.softmax(scaled, dim=-1), 1)[:, 0]
        return torch.where(temps > 0, sampled, greedy)


def _int8(model: torch.nn.Module) -> None:
    """Replace the model's linear layers by int8 ones, in place (CPU). torch 2.13 calls this API
    deprecated in favour of torchao, whose int8 CPU path needs torch.compile to be fast; torch is
    pinned here, so its warnings are not repeated at every start."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(deprecated|torchao).*")
        quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]


def _send(on_piece: Callable[[int, str], None], s: _Sequence, piece: str) -> None:
    if piece:
        on_piece(s.index, piece)


@dataclass
class _Batch:
    """The sequences decoding together: their rows of the KV cache and of the attention mask (every
    row as long as the longest, left-padded), each row's last position and the token it decodes next."""

    seqs: list[_Sequence]
    cache: DynamicCache
    mask: torch.Tensor
    last: torch.Tensor
    chosen: torch.Tensor

    def keep(self, device: str) -> "_Batch | None":
        """Without the rows of sequences that ended; None when none runs."""
        keep = [row for row, s in enumerate(self.seqs) if s.finish is None]
        if not keep:
            return None
        if len(keep) < len(self.seqs):
            rows = torch.tensor(keep, device=device)
            self.cache.batch_select_indices(rows)
            self.mask, self.last, self.chosen = self.mask[rows], self.last[rows], self.chosen[rows]
            self.seqs = [self.seqs[row] for row in keep]
        return self

    def merge(self, other: "_Batch") -> None:
        """Take `other`'s rows after ours, the shorter side's cache and mask padded on the left
        (masked out: a row never attends to them; each keeps its own positions)."""
        length = max(self.mask.shape[1], other.mask.shape[1])
        for layer, (keys, values), (their_keys, their_values) in zip(
            self.cache.layers, _kv(self.cache), _kv(other.cache), strict=True
        ):
            assert isinstance(layer, DynamicLayer)
            layer.keys = torch.cat([_left(keys, length), _left(their_keys, length)])
            layer.values = torch.cat([_left(values, length), _left(their_values, length)])
        self.mask = torch.cat([_left_mask(self.mask, length), _left_mask(other.mask, length)])
        self.last = torch.cat([self.last, other.last])
        self.chosen = torch.cat([self.chosen, other.chosen])
        self.seqs = self.seqs + other.seqs


def _kv(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's keys and values. A model whose batches take joiners has only `DynamicLayer`s
    (checked when it loads), filled once its prompt was read."""
    pairs = []
    for layer in cache.layers:
        assert isinstance(layer, DynamicLayer) and layer.keys is not None and layer.values is not None
        pairs.append((layer.keys, layer.values))
    return pairs


def _left(states: torch.Tensor, length: int) -> torch.Tensor:
    """Key or value states [batch, heads, seq, dim] padded with zeros at the start to `length`."""
    return torch.nn.functional.pad(states, (0, 0, length - states.shape[-2], 0))


def _left_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(mask, (length - mask.shape[-1], 0))


def _outcome(s: _Sequence, done: float) -> Generated:
    first_ms = ((s.first_at or done) - s.started) * 1000
    rate = 0.0
    if s.tokens > 1 and s.first_at is not None and s.last_at is not None and s.last_at > s.first_at:
        rate = (s.tokens - 1) / (s.last_at - s.first_at)
    return Generated(
        text=s.stream.sent,
        input_tokens=len(s.prompt),
        output_tokens=s.tokens,
        finish_reason=s.finish or "cancelled",
        first_token_ms=round(first_ms, 1),
        tokens_per_s=round(rate, 2),
    )
