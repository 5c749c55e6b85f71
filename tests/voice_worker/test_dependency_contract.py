"""The parts of the worker's model libraries we reach inside, as we rely on them: an upgrade fails
here first, naming what moved (docs/internals.md lists every private name and why). RQ's are in
test_rq_contract.py.

- coqui-tts: voice_worker/tts/coqui.py replaces `Xtts._load_checkpoint` on the instance it loads
  (coqui's own rewrites an original XTTS checkpoint in place, and the model directory is read-only)
  and unpickles those checkpoints inside `TTS.tts.models.xtts._legacy_safe_globals()`.
"""

import inspect
from importlib import metadata

import pytest

pytest.importorskip("TTS", reason="coqui-tts is not installed in this interpreter", exc_type=ImportError)

from TTS.tts.models import xtts  # noqa: E402  (after the skip)

PINNED = {"coqui-tts": "0.28.0"}


def test_the_versions_we_wrote_against():
    found = {name: metadata.version(name) for name in PINNED}
    assert found == PINNED, f"installed {found}, written against {PINNED}: check voice_worker/tts/coqui.py"


def test_xtts_reads_its_weights_through_the_method_we_replace():
    """`load_checkpoint` -> `get_compatible_checkpoint_state_dict` -> `self._load_checkpoint(path)`,
    whose answer is the state dict (`checkpoint["model"]`)."""
    assert list(inspect.signature(xtts.Xtts._load_checkpoint).parameters) == ["self", "model_path"]
    assert "self._load_checkpoint(model_path)" in inspect.getsource(xtts.Xtts.get_compatible_checkpoint_state_dict)
    assert "self.get_compatible_checkpoint_state_dict(" in inspect.getsource(xtts.Xtts.load_checkpoint)
    assert 'return checkpoint["model"]' in inspect.getsource(xtts.Xtts._load_checkpoint)


def test_the_legacy_unpickling_context_is_there():
    assert callable(xtts._legacy_safe_globals)
    with xtts._legacy_safe_globals():
        pass
