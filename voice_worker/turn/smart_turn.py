"""Smart Turn v3.2 (Pipecat's end-of-turn model, BSD-2): a small Whisper-encoder classifier that
hears the last 8 s of a turn, words and intonation, and says whether the speaker has finished.

Its ONNX file ships inside the `pipecat-ai` wheel, which the worker depends on for that file
alone: we load it with onnxruntime and never import `pipecat`. Pipecat's own analyzer
(`LocalSmartTurnAnalyzerV3`) is built into its asyncio frame pipeline and buffers audio in its own
state machine; ours is `voice_worker.listening`, fed by our VAD, so only the model is shared.
Measured on this 2-core CPU, one thread: ~30 ms a decision.
"""

from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime

from .. import modelfiles
from ..errors import EngineLoadError
from .base import TurnModel
from .features import SAMPLE_RATE, log_mel

MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
SECONDS = 8


def default_model_path() -> Path:
    """The model file inside the installed `pipecat-ai` distribution (nothing is imported), checked
    against its sha256 (voice_worker/modelfiles.py)."""
    try:
        path = Path(str(metadata.distribution("pipecat-ai").locate_file(MODEL_FILE)))
    except metadata.PackageNotFoundError:
        raise EngineLoadError(
            "The pipecat-ai package (it carries the Smart Turn model) is not installed; install the worker's "
            "dependencies, or set TURN_MODEL to a smart-turn-v3 .onnx file."
        ) from None
    modelfiles.verify(modelfiles.SMART_TURN, path.parent)
    return path


class SmartTurn(TurnModel):
    name = "smart-turn-v3.2"

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise EngineLoadError(f"Smart Turn model file {path} is missing.")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(str(path), sess_options=options)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception directly
            raise EngineLoadError(f"Smart Turn model {path} failed to load: {exc}") from exc

    def probability(self, samples: np.ndarray) -> float:
        last = samples[-SAMPLE_RATE * SECONDS :]
        # The model wants the turn to end at the end of its 8 s: shorter turns are padded in front.
        x = np.concatenate([np.zeros(SAMPLE_RATE * SECONDS - len(last), dtype=np.float32), last])
        features = log_mel(x, SECONDS)[None, :, :]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])
