"""No import crosses a package except through its `__init__`'s `__all__`.

`from queues import JobClient` is how another package (or a harness: bench, scripts, tests) uses
`queues`; `from queues._client import JobClient`, `import queues._client` or a name `queues`
does not export are not. So the surface each package offers is the list its `__init__` pins
(tests/shared_schemas/test_contract.py, tests/council/test_surface.py), and a module can be
renamed or split without reading the rest of the tree.

Read with `ast`, never imported, so it runs on both interpreters (make test runs it on each).

Inside a package, imports are its own business; so are a unit test's: `tests/<package>/` tests
the internals of the package it mirrors. What else still reaches inside is in `EXCEPTIONS`, each
with its reason; an exception nothing uses any more fails the test, so the list cannot rot.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared_schemas", "queues", "billing", "voice_worker", "council", "web")
SKIP = {"build", "artifacts", "node_modules"}

# Harnesses that build the whole app: benchmarks and the tests that run it across the runtimes.
HARNESSES = ("bench", "tests/integration", "tests/chaos", "tests/deploy")
EXCEPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # imported module (or "module:name"): (where it may be imported from, why)
    "council.scripted": (
        ("bench", "tests"),
        "the scripted chat model: the seam tests and benchmarks use in place of an LLM server, kept "
        "out of `council.__all__` because nothing in the app may choose it",
    ),
    **{
        module: (
            HARNESSES,
            "`web` is the application, the top of the import graph: no package imports it, and its "
            "`__init__` stays empty so that `python -m web.upload`, a client, does not load the "
            "server; harnesses build the app from its modules",
        )
        for module in ("web.app", "web.settings", "web.services", "web.turns")
    },
    "voice_worker.settings": (
        ("tests",),
        "`voice_worker`, like `web`, is a runtime at the top of its import graph (nothing imports it, "
        "its `__init__` exports nothing); tests that hold the runtimes' settings side by side build "
        "the worker's settings model",
    ),
}


def public_names(package: str) -> set[str]:
    """The package's `__all__`, read from its `__init__` (none: nothing is exported)."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


EXPORTED = {package: public_names(package) for package in PACKAGES}


def home_of(path: Path) -> str:
    """The package a file belongs to: its top folder, or for tests/<package>/..., that package."""
    parts = path.relative_to(ROOT).parts
    if parts[0] == "tests" and len(parts) > 2 and parts[1] in PACKAGES:
        return parts[1]
    return parts[0]


def sources() -> list[Path]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith(".") or part in SKIP or part.endswith(".egg-info") for part in parts):
            continue
        found.append(path)
    return found


def crossings_in(where: str, home: str, source: str) -> list[tuple[str, str, str]]:
    """(file:line, what it imports, the key an exception would name) for every import in `source`
    (the file `where`, of package `home`) that reaches into another of our packages other than
    through its `__all__`."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top, _, inner = node.module.partition(".")
            if top not in PACKAGES or top == home:
                continue
            if inner:
                names = ", ".join(alias.name for alias in node.names)
                found.append((f"{where}:{node.lineno}", f"from {node.module} import {names}", node.module))
                continue
            for alias in node.names:
                if alias.name not in EXPORTED[top]:
                    found.append((f"{where}:{node.lineno}", f"from {top} import {alias.name}", f"{top}:{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top, _, inner = alias.name.partition(".")
                if top in PACKAGES and top != home and inner:
                    found.append((f"{where}:{node.lineno}", f"import {alias.name}", alias.name))
    return found


def crossings() -> list[tuple[str, str, str]]:
    found = []
    for path in sources():
        where = path.relative_to(ROOT).as_posix()
        found += crossings_in(where, home_of(path), path.read_text(encoding="utf-8"))
    return found


def excused(where: str, key: str) -> bool:
    if key not in EXCEPTIONS:
        return False
    allowed, _ = EXCEPTIONS[key]
    return any(where == place or where.startswith(place.rstrip("/") + "/") for place in allowed)


def test_the_search_reads_the_tree():
    files = {path.relative_to(ROOT).as_posix() for path in sources()}
    assert {"web/app.py", "voice_worker/jobs.py", "billing/_ledger.py", "bench/turns.py"} <= files
    assert all(public_names(package) for package in ("shared_schemas", "queues", "billing", "council"))


def test_no_import_goes_around_a_packages_all():
    bad = [f"{where}: {what}" for where, what, key in crossings() if not excused(where.rpartition(":")[0], key)]
    assert not bad, (
        "imports around a package's __all__ (export the name, or import it from the package):\n" + "\n".join(bad)
    )


def test_every_exception_is_still_needed():
    used = {key for where, _, key in crossings() if excused(where.rpartition(":")[0], key)}
    assert not set(EXCEPTIONS) - used, f"exceptions nothing needs any more: {sorted(set(EXCEPTIONS) - used)}"


def test_a_crossing_is_found():
    """The check itself: a private module, a name outside `__all__`, `import package.module`."""
    source = "from queues._client import JobClient\nfrom billing import _SPEND\nimport shared_schemas._jobs\n"
    found = [what for _, what, _ in crossings_in("bench/probe.py", "bench", source)]
    assert found == [
        "from queues._client import JobClient",
        "from billing import _SPEND",
        "import shared_schemas._jobs",
    ]
    assert not crossings_in("queues/probe.py", "queues", "from queues._client import JobClient\n")
    assert not crossings_in("tests/queues/test_probe.py", "queues", "from queues._client import JobClient\n")
