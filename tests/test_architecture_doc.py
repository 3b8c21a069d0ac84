"""``docs/architecture.md`` held against the tree: every module and every entry point is named
there, and everything it names (a path, a dotted name, a ``python -m`` command) exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGES = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")
SPECIAL_FILES = {"__init__.py", "__main__.py"}  # a package is described by its folder


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def backticked(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def module_files() -> list[str]:
    """Every module of the project's packages, as a path from the repository root."""
    files = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name not in SPECIAL_FILES and "__pycache__" not in path.parts:
                files.append(path.relative_to(REPO).as_posix())
    return files


def runnable_modules() -> set[str]:
    """Dotted names that ``python -m`` runs: modules with a main guard, packages with __main__."""
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            relative = path.relative_to(REPO).with_suffix("")
            if path.name == "__main__.py":
                names.add(".".join(relative.parent.parts))
            elif re.search(r'^if __name__ == "__main__":', path.read_text(encoding="utf-8"), re.M):
                names.add(".".join(relative.parts))
    return names


def commands_in_doc() -> set[str]:
    """The modules of every ``python -m`` in the page, short names and ``tritonlm.`` forms alike."""
    found = re.findall(r"python\s+-m\s+([\w.]+)", doc_text())
    short = set(PACKAGES) - {"tritonlm"}  # tritonlm.train.x is train.x; tritonlm.cli is itself

    def name(module: str) -> str:
        rest = module.removeprefix("tritonlm.")
        return rest if rest.split(".")[0] in short else module

    return {name(m) for m in found if not m.endswith(".")}  # not `tritonlm.<module>`


def test_the_packages_are_found():
    assert {"kernels", "model", "tokenizer", "train", "util", "bench"} <= set(PACKAGES)
    assert len(module_files()) > 50 and "train.leaderboard" in runnable_modules()


@pytest.mark.parametrize("module", module_files())
def test_every_module_is_named(module):
    assert module in backticked(doc_text()), f"docs/architecture.md does not name `{module}`: add it to its package's table"


@pytest.mark.parametrize("module", sorted(runnable_modules()))
def test_every_entry_point_is_named(module):
    assert module in commands_in_doc(), f"docs/architecture.md does not list `python -m {module}` among the entry points"


def test_every_named_path_exists():
    top = {p.name for p in REPO.iterdir()}
    paths = [t for t in backticked(doc_text()) if "/" in t and " " not in t and t.split("/")[0] in top]
    assert paths, "the page names no path at all"
    missing = sorted(t for t in paths if not any(REPO.glob(t)))  # a pattern (tests/test_kernels_*) names at least one
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_command_runs_a_module():
    commands = commands_in_doc()
    assert commands, "the page lists no entry point"
    missing = sorted(commands - runnable_modules())
    assert not missing, f"docs/architecture.md lists `python -m` commands with no runnable module: {missing}"


def resolves(dotted: str) -> bool:
    """Whether a fully qualified name (``train.loop.run_training``) is a module or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        if not (REPO / Path(*parts[:cut])).with_suffix(".py").is_file() and not (REPO / Path(*parts[:cut])).is_dir():
            continue
        prefix = "" if parts[0] == "bench" else "tritonlm."
        obj = importlib.import_module(prefix + module_name)
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_qualified_name_exists():
    pattern = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)+$")
    names = sorted(t for t in backticked(doc_text()) if pattern.match(t) and not t.startswith("tritonlm."))
    assert names, "the page names no module or function by its qualified name"
    missing = [n for n in names if not resolves(n)]
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
