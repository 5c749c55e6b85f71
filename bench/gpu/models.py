"""XTTS v2 and Parakeet TDT 0.6B v2 with random weights, built from their published architectures
and saved as operators get them (a Coqui model directory, a `.nemo` archive).

A random-weight model costs the same compute per token and per frame as the trained one. Two
things differ, and the benchmark says so beside its figures:

- XTTS: random weights do not stop a sentence where speech would end (the stop token is one of
  1026, drawn at random or not at all), so each sentence would run to the model's longest output
  (602 audio tokens, about 28 s) or stop anywhere. The stop token's logit is pushed down (-1e4 on
  the audio head's bias) and the saved config caps generation at `XTTS_BENCH_AUDIO_TOKENS` - 3 =
  80 tokens (about 3.7 s: a sentence's worth) through `gpt_max_audio_tokens`, the one knob the
  engine reads: every sentence does the same work. The cap also shrinks the GPT's learned position
  table (about 0.5 M of 467 M parameters); `xtts_config(size)` without a cap is the published
  model, which the parameter count checks.
- Parakeet: a random joint network emits arbitrary pieces; greedy TDT decoding runs the same
  encoder, and at most `max_symbols` (10, as published) pieces per frame.

Runs under the worker's Python (3.11 here, 3.12 on the GPU machine): torch, coqui-tts, NeMo.
"""

import re
from pathlib import Path
from typing import Any, Literal

Size = Literal["published", "tiny"]
SIZES: tuple[Size, ...] = ("published", "tiny")

ROOT = Path(__file__).resolve().parents[2]
XTTS_RATE = 22_050  # the rate the GPT and the conditioning encoder hear
XTTS_CODE_STRIDE = 1024  # samples at 22.05 kHz per GPT audio token: 21.5 tokens a second
# The GPT generates (cap - 3) tokens (coqui-tts: max_gen_mel_tokens = max_mel_tokens - 1 - 2).
XTTS_BENCH_AUDIO_TOKENS = 83
XTTS_BENCH_AUDIO_S = (XTTS_BENCH_AUDIO_TOKENS - 3) * XTTS_CODE_STRIDE / XTTS_RATE
XTTS_SPEAKER = "Claribel Dervla"  # a built-in speaker's name, as in the published speakers_xtts.pth
XTTS_TEXT_TOKENS = 6681  # the published vocab.json's size
PARAKEET_VOCAB = 1024  # Parakeet TDT 0.6B v2: a 1024-piece SentencePiece BPE
DURATIONS = [0, 1, 2, 3, 4]  # TDT durations, in encoder frames

# Published XTTS v2 (coqui/XTTS-v2 config.json, model_args; XttsArgs defaults where they agree).
XTTS_PUBLISHED: dict[str, Any] = {
    "gpt_layers": 30, "gpt_n_model_channels": 1024, "gpt_n_heads": 16,
    "gpt_num_audio_tokens": 1026, "gpt_start_audio_token": 1024, "gpt_stop_audio_token": 1025,
    "gpt_max_audio_tokens": 605, "gpt_max_text_tokens": 402, "gpt_max_prompt_tokens": 70,
    "gpt_code_stride_len": XTTS_CODE_STRIDE, "gpt_use_perceiver_resampler": True,
    "gpt_use_masking_gt_prompt_approach": True, "decoder_input_dim": 1024, "d_vector_dim": 512,
    "cond_d_vector_in_each_upsampling_layer": True, "input_sample_rate": XTTS_RATE,
    "output_sample_rate": 24_000, "output_hop_length": 256, "kv_cache": True,
}  # fmt: skip
# The tests' tiny XTTS (tests/voice_worker/test_coqui.py): a one-layer GPT, the real HiFi-GAN decoder.
XTTS_TINY: dict[str, Any] = {
    "gpt_layers": 1, "gpt_n_model_channels": 64, "gpt_n_heads": 2, "gpt_num_audio_tokens": 66,
    "gpt_start_audio_token": 64, "gpt_stop_audio_token": 65, "gpt_max_audio_tokens": 60,
    "gpt_max_text_tokens": 200, "gpt_max_prompt_tokens": 20, "decoder_input_dim": 64,
    "gpt_use_perceiver_resampler": True,
}  # fmt: skip
# Published sampling settings (config.json's top level).
XTTS_INFERENCE = {
    "temperature": 0.75, "length_penalty": 1.0, "repetition_penalty": 10.0, "top_k": 50, "top_p": 0.85,
    "gpt_cond_len": 30, "gpt_cond_chunk_len": 4, "max_ref_len": 30, "sound_norm_refs": False,
}  # fmt: skip


def corpus(min_chars: int = 0) -> str:
    """English-ish text to train the tokenizers on: this repository's prose and code, lower case,
    one line per sentence (repeated until `min_chars`)."""
    pieces = []
    for path in sorted([*ROOT.glob("*.md"), *ROOT.glob("*/*.md"), *ROOT.glob("*/*.py"), *ROOT.glob("*/*/*.py")]):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        text = re.sub(r"[^a-z.,?!' ]+", " ", path.read_text(encoding="utf-8", errors="ignore").lower())
        pieces += [line.strip() for line in re.split(r"(?<=[.?!])\s+", text) if len(line.strip()) > 3]
    text = "\n".join(pieces)
    while len(text) < min_chars:
        text += "\n" + text
    return text


# ---------------------------------------------------------------------------------------------- XTTS


def xtts_config(size: Size, *, max_audio_tokens: int | None = None) -> Any:
    """The XttsConfig of `size` (published: XTTS v2's), generation capped at `max_audio_tokens` if given."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import XttsArgs

    values = dict(XTTS_PUBLISHED if size == "published" else XTTS_TINY)
    if max_audio_tokens is not None:
        values["gpt_max_audio_tokens"] = max_audio_tokens
    if size == "published":
        return XttsConfig(model_args=XttsArgs(**values), languages=["en"], **XTTS_INFERENCE)
    return XttsConfig(model_args=XttsArgs(**values), languages=["en"])


def xtts_vocab(folder: Path, size: Size) -> Path:
    """vocab.json: a byte-pair tokenizer trained here, padded to the published 6681 tokens (published),
    or the tests' character vocabulary (tiny). Special tokens as XTTS's: [STOP] [UNK] [SPACE] [START] [en]."""
    import tokenizers

    path = folder / "vocab.json"
    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
    if size == "tiny":
        symbols = [*specials, *"abcdefghijklmnopqrstuvwxyz.,?!'"]
        vocab = tokenizers.Tokenizer(
            tokenizers.models.WordLevel({t: i for i, t in enumerate(symbols)}, unk_token="[UNK]")
        )
        vocab.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"\[[^\]]+\]|."), behavior="isolated")
        vocab.save(str(path))
        return path
    vocab = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    vocab.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=XTTS_TEXT_TOKENS, special_tokens=specials, show_progress=False)
    vocab.train_from_iterator(corpus().splitlines(), trainer=trainer)
    short = XTTS_TEXT_TOKENS - vocab.get_vocab_size()
    if short > 0:  # a small corpus runs out of merges: unused tokens keep the published size
        vocab.add_special_tokens([f"[unused{n}]" for n in range(short)])
    vocab.save(str(path))
    return path


def build_xtts(folder: Path, size: Size, *, max_audio_tokens: int | None = XTTS_BENCH_AUDIO_TOKENS) -> Path:
    """An XTTS model directory as operators get it: config.json, model.pth, vocab.json,
    speakers_xtts.pth (one built-in speaker). Random weights; generation capped (see the module)."""
    import numpy as np
    import torch
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True, exist_ok=True)
    xtts_vocab(folder, size)
    config = xtts_config(size, max_audio_tokens=max_audio_tokens if size == "published" else None)
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(str(folder / "vocab.json"))
    model.init_models()
    model.eval()
    with torch.no_grad():  # never the stop token: every sentence runs to the cap, the same work each time
        model.gpt.mel_head.bias[model.gpt.stop_audio_token] = -1e4
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    noise = np.random.default_rng(0).standard_normal(6 * XTTS_RATE).astype(np.float32) * 0.1
    with torch.inference_mode():
        clip = torch.from_numpy(noise).unsqueeze(0)
        c = config
        latent = model.get_gpt_cond_latents(clip, XTTS_RATE, length=c.gpt_cond_len, chunk_length=c.gpt_cond_chunk_len)
        embedding = model.get_speaker_embedding(clip, XTTS_RATE)
    speakers = {XTTS_SPEAKER: {"gpt_cond_latent": latent, "speaker_embedding": embedding}}
    torch.save(speakers, folder / "speakers_xtts.pth")
    del model
    return folder


def count_xtts_params(size: Size = "published") -> int:
    """Parameters of XTTS at `size`, uncapped (GPT with its heads, conditioning, HiFi-GAN decoder and
    its speaker encoder), counted on the meta device: nothing is allocated or initialized."""
    import torch
    from TTS.tts.models import xtts

    config = xtts_config(size)
    config.model_args.gpt_number_text_tokens = XTTS_TEXT_TOKENS if size == "published" else 36
    config.model_args.gpt_start_text_token, config.model_args.gpt_stop_text_token = 3, 0
    hifigan = xtts.HifiDecoder

    def on_cpu(*args: Any, **kwargs: Any) -> Any:  # its speaker encoder computes a mel filter bank
        with torch.device("cpu"):
            return hifigan(*args, **kwargs)

    model = xtts.Xtts(config)
    xtts.HifiDecoder = on_cpu
    try:
        with torch.device("meta"):  # the GPT (nine tenths of it): shapes only
            model.init_models()
    finally:
        xtts.HifiDecoder = hifigan
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ Parakeet


def parakeet_config(size: Size, tokenizer_dir: str) -> dict[str, Any]:
    """NeMo's config of Parakeet TDT 0.6B v2 (FastConformer XL + TDT), or the tests' tiny one."""
    published = size == "published"
    hidden = 1024 if published else 32
    pred = 640 if published else 32
    features = 128 if published else 32
    return {
        "sample_rate": 16_000,
        "model_defaults": {
            "enc_hidden": hidden, "pred_hidden": pred, "joint_hidden": pred,
            "tdt_durations": DURATIONS, "num_tdt_durations": len(DURATIONS),
        },
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16_000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
            "window": "hann", "features": features, "n_fft": 512, "log": True, "frame_splicing": 1,
            "dither": 0.0 if not published else 1e-5, "pad_to": 0, "pad_value": 0.0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": features, "feat_out": -1, "n_layers": 24 if published else 1, "d_model": hidden,
            "use_bias": True, "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": 256 if published else hidden,
            "causal_downsampling": False,
            "ff_expansion_factor": 4 if published else 2, "self_attention_model": "rel_pos",
            "n_heads": 8 if published else 2, "att_context_size": [-1, -1], "att_context_style": "regular",
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "conv_context_size": None,
            "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
            "random_state_sampling": False, "blank_as_pad": True,
            "prednet": {"pred_hidden": pred, "pred_rnn_layers": 2 if published else 1, "t_max": None, "dropout": 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None, "preserve_memory": False,
            "fuse_loss_wer": False, "num_extra_outputs": len(DURATIONS),
            "jointnet": {"joint_hidden": pred, "activation": "relu", "dropout": 0.0,
                         "encoder_hidden": hidden, "pred_hidden": pred},
        },
        "decoding": {
            "strategy": "greedy_batch", "model_type": "tdt", "durations": DURATIONS,
            "greedy": {"max_symbols": 10},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": DURATIONS, "sigma": 0.02, "omega": 0.1},
        },
        # Without these two blocks NeMo's transcribe() fails (see /work/shared/FACTS.md).
        "validation_ds": {
            "manifest_filepath": None, "sample_rate": 16_000, "batch_size": 4, "shuffle": False,
            "use_start_end_token": False,
        },
    }  # fmt: skip


def parakeet_tokenizer(folder: Path, size: Size) -> Path:
    """A SentencePiece BPE trained here: 1024 pieces (published) or 48 (tiny)."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.txt"
    text.write_text(corpus(min_chars=20_000), encoding="utf-8")
    vocab = PARAKEET_VOCAB if size == "published" else 48
    create_spt_model(
        str(text), vocab_size=vocab, sample_size=-1, do_lower_case=True, tokenizer_type="bpe", output_dir=str(folder)
    )
    return folder


def build_parakeet(folder: Path, size: Size) -> Path:
    """folder/parakeet-tdt-0.6b-v2.nemo (published) or folder/tiny.nemo, saved with `save_to`."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = parakeet_tokenizer(folder / "tokenizer", size)
    torch.manual_seed(0)
    model = EncDecRNNTBPEModel(cfg=OmegaConf.create(parakeet_config(size, str(tokenizer))))
    # Word-start pieces a little likelier, so the random model's output comes out as words.
    pieces = model.tokenizer.ids_to_tokens(list(range(model.tokenizer.vocab_size)))
    with torch.no_grad():
        bias = model.joint.joint_net[-1].bias
        for index, piece in enumerate(pieces):
            if piece.startswith("▁") and len(piece) > 1:
                bias[index] += 3.0
    path = folder / ("parakeet-tdt-0.6b-v2.nemo" if size == "published" else "tiny.nemo")
    model.save_to(str(path))
    del model
    return path


def count_parakeet_params(size: Size = "published") -> int:
    """Parameters of Parakeet at `size` (encoder, prediction and joint networks), counted on the
    meta device from the config alone: no tokenizer is trained and nothing is allocated."""
    import torch
    from hydra.utils import instantiate
    from nemo.collections.asr.modules import conformer_encoder
    from omegaconf import OmegaConf

    config = OmegaConf.create(parakeet_config(size, ""))
    vocab = PARAKEET_VOCAB if size == "published" else 48
    subsampling = conformer_encoder.ConvSubsampling

    def on_cpu(*args: Any, **kwargs: Any) -> Any:  # it sizes its output layer from a computed length
        with torch.device("cpu"):
            return subsampling(*args, **kwargs)

    conformer_encoder.ConvSubsampling = on_cpu
    try:
        with torch.device("meta"):
            encoder = instantiate(config.encoder)
            decoder = instantiate(config.decoder, vocab_size=vocab)
            joint = instantiate(config.joint, num_classes=vocab)
    finally:
        conformer_encoder.ConvSubsampling = subsampling
    return sum(p.numel() for m in (encoder, decoder, joint) for p in m.parameters())
