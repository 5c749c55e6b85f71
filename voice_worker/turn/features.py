"""Whisper's log-mel features in numpy, exactly as Smart Turn was trained on them.

Smart Turn v3 reads the features of `transformers.WhisperFeatureExtractor(chunk_length=8)` with
its waveform normalization. faster-whisper's extractor pads differently and moved Smart Turn's
probabilities by up to 0.1 on our test clips, so this module computes them the transformers way
(the math follows transformers' feature_extraction_whisper.py and audio_utils.py, Apache-2.0;
pipecat vendors the same): 25 ms Hann windows every 10 ms, a Slaney mel filter bank, log10
clamped to 8 below the maximum, scaled to about [-1, 1]. A test compares it with transformers'.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


def _mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS): triangular filters, Slaney-normalized by area."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array([SAMPLE_RATE / 2.0]))[0], N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    normalized: np.ndarray = filters * (2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]))[None, :]
    return normalized


_FILTERS = _mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def log_mel(samples: np.ndarray, seconds: int) -> np.ndarray:
    """(N_MELS, seconds * 100) float32 features of `samples` (16 kHz), padded with zeros at the
    end or cut to `seconds`, normalized to zero mean and unit variance first."""
    n = SAMPLE_RATE * seconds
    x = np.zeros(n, dtype=np.float32)
    x[: min(n, len(samples))] = samples[:n]
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2
    mel = np.log10(np.maximum(1e-10, _FILTERS.T @ power.T))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    features: np.ndarray = ((mel + 4.0) / 4.0).astype(np.float32)
    return features
