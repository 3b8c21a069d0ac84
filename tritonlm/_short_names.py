"""The repository's short entry points (``python -m train.leaderboard``) as aliases.

From the repository root (the working folder is on ``sys.path``), ``python -m train.leaderboard``
finds the folder ``train/`` as a top-level package named ``train``. Loading it a second time
under that name would run every module twice (two copies of each class, each torch operator
registered twice), so the folder's ``__init__`` calls :func:`become_alias` first:

- if another installed distribution owns the short name (Hugging Face's ``kernels``, which
  ``transformers`` imports as ``import kernels``), that package is loaded instead, so the
  repository root never hides it from the code that asked for it;
- otherwise ``sys.modules["train"]`` becomes ``tritonlm.train`` itself, and a finder serves every
  ``train.<sub>`` as ``tritonlm.train.<sub>``.

The project's own code imports only ``tritonlm.*``, so the short names are for people typing
``python -m train.leaderboard`` in the repository root, nothing else.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PREFIX = "tritonlm."


class _AliasLoader(importlib.abc.Loader):
    """Loads ``short.sub`` as the module ``tritonlm.short.sub`` (the same object, not a copy)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target module ran when it was imported under its own name."""

    def get_code(self, fullname: str):
        """The target's code, for ``python -m short.sub`` (runpy runs it as ``__main__``)."""
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)

    def is_package(self, fullname: str) -> bool:
        spec = importlib.util.find_spec(self.target)
        return spec.submodule_search_locations is not None


class _ShortNameFinder(importlib.abc.MetaPathFinder):
    """Finds ``short.sub`` for every aliased short name as ``tritonlm.short.sub``."""

    def __init__(self):
        self.short_names: set[str] = set()

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.partition(".")[0] not in self.short_names or "." not in fullname:
            return None
        real = PREFIX + fullname
        real_spec = importlib.util.find_spec(real)
        if real_spec is None:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, _AliasLoader(real), origin=real_spec.origin,
                                              is_package=real_spec.submodule_search_locations is not None)
        if real_spec.submodule_search_locations is not None:
            spec.submodule_search_locations = list(real_spec.submodule_search_locations)
        return spec


_FINDER = _ShortNameFinder()


def _checkout_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _inside(origin: str | None, folder: Path) -> bool:
    return origin is not None and Path(origin).resolve().is_relative_to(folder)


def other_distribution_spec(short_name: str):
    """The spec of a top-level package ``short_name`` that lives outside this checkout (another
    installed distribution), or None."""
    root = _checkout_root()
    elsewhere = [entry for entry in sys.path if Path(entry or os.getcwd()).resolve() != root]
    for finder in sys.meta_path:
        if finder is _FINDER:
            continue
        if finder is importlib.machinery.PathFinder:
            spec = finder.find_spec(short_name, elsewhere)
        else:
            find = getattr(finder, "find_spec", None)
            spec = find(short_name, None) if find is not None else None
        if spec is None or spec.origin in ("built-in", "frozen"):
            continue
        locations = list(spec.submodule_search_locations or [])
        if not _inside(spec.origin, root) and not any(_inside(loc, root) for loc in locations):
            return spec
    return None


def _load_other_distribution(short_name: str, spec) -> None:
    module = importlib.util.module_from_spec(spec)
    sys.modules[short_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(short_name, None)
        raise


def become_alias(short_name: str) -> None:
    """Called by a package folder imported under its short name: hand the name to another
    distribution that owns it, else make ``sys.modules[short_name]`` the package
    ``tritonlm.<short_name>`` and serve its submodules under the short name too."""
    if short_name.startswith(PREFIX):
        return
    other = other_distribution_spec(short_name)
    if other is not None:
        _load_other_distribution(short_name, other)
        return
    _FINDER.short_names.add(short_name)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    sys.modules[short_name] = importlib.import_module(PREFIX + short_name)
