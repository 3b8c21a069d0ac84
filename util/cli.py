"""Command-line flags generated from (nested) dataclasses: ``--key=value``, ``--model.d_model=64``.

Public helpers, reused by every entry point that takes a config:

- ``add_dataclass_arguments(parser, config)`` adds one flag per field (nested dataclass fields
  are dotted), typed from the field annotations, with the current values as help defaults;
- ``parse_overrides(argv, config)`` turns a list like ``["--batch_size=8", "--model.d_model=64"]``
  into ``{"batch_size": "8", "model.d_model": "64"}``;
- ``apply_overrides(config, overrides)`` returns a new, re-validated config with the overrides
  converted to each field's type. Unknown keys and unparsable values raise ``ConfigError``
  naming the key (and close matches).

Supported field types: bool (true/false/1/0/yes/no), int, float, str, Optional[...] ("none" is
None), tuples of scalars (comma separated, "0.9,0.95") and nested dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import sys
import types
import typing
from typing import Any, Callable, Iterable

FIELD_DEST = "field:"
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """An override that names no field or whose value does not fit the field's type."""


class UserError(Exception):
    """A problem with what the user gave (a file, a folder, a flag, a checkpoint), and its fix:
    a command shows it as one line and exits 2. ``OSError`` and ``ValueError`` count as such too."""


class RunFailed(Exception):
    """A run that started and failed (it diverged): one line, exit 1, its checkpoint kept."""


class Interrupted(Exception):
    """A run stopped on a signal, resumably; the message says how to continue: exit 130."""


def cli_main(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main(argv) -> exit code``: user errors print one ``error:`` line and
    exit 2, a failed run exits 1, Ctrl-C and interrupted runs exit 130; never a traceback for
    these (any other exception is a bug, and keeps its traceback)."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            given = sys.argv[1:] if argv is None else list(argv)
            check_unique_flags(given)
            return main(hyphenated(given))
        except Interrupted as e:
            print(f"\n{e}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("\ninterrupted: no partial output was written", file=sys.stderr)
            return 130
        except RunFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except (OSError, ValueError, UserError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run


def flatten_fields(config: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``{"dotted.name": (type, current value)}`` for every leaf field of a dataclass instance."""
    hints = typing.get_type_hints(type(config))
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten_fields(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = (hints[f.name], value)
    return out


def convert_value(text: str, annotation: Any, key: str = "value") -> Any:
    """Convert the string ``text`` to ``annotation`` (bool, int, float, str, Optional, tuple)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert_value(text, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        parts = [p for p in text.split(",") if p.strip()]
        item_types = [args[0]] * len(parts) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(parts):
            raise ConfigError(f"--{key} expects {len(item_types)} comma-separated values, got {text!r}")
        return tuple(convert_value(p.strip(), t, key) for p, t in zip(parts, item_types))
    if origin is typing.Literal:
        if text not in [str(a) for a in args]:
            raise ConfigError(f"--{key}={text!r} is not one of {', '.join(map(str, args))}")
        return next(a for a in args if str(a) == text)
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"--{key} expects true/false, got {text!r}")
    if annotation in (int, float):
        try:
            return annotation(float(text)) if annotation is int and _is_integral_float(text) else annotation(text)
        except ValueError:
            raise ConfigError(f"--{key} expects {annotation.__name__}, got {text!r}") from None
    if annotation is str or annotation is Any:
        return text
    raise ConfigError(f"--{key}: fields of type {annotation!r} cannot be set from the command line")


def _is_integral_float(text: str) -> bool:
    """Accept "1e6" for an int field (exact integers only)."""
    try:
        value = float(text)
    except ValueError:
        return False
    return value.is_integer() and not text.strip().lstrip("+-").isdigit()


def parse_overrides(argv: Iterable[str], config: Any) -> dict[str, str]:
    """``["--a=1", "--model.b", "2"]`` -> ``{"a": "1", "model.b": "2"}``; unknown keys raise."""
    known = flatten_fields(config)
    overrides: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--"):
            raise ConfigError(f"expected --key=value, got {item!r}")
        key, sep, value = item[2:].partition("=")
        if not sep:
            if known.get(key, (None,))[0] is bool and (i + 1 >= len(items) or items[i + 1].startswith("--")):
                value = "true"  # a bare boolean flag switches it on
            elif i + 1 < len(items):
                i += 1
                value = items[i]
            else:
                raise ConfigError(f"--{key} needs a value")
        check_known_key(key.replace("-", "_"), known)
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides


def hyphenated(argv: Iterable[str]) -> list[str]:
    """Every ``--flag_name`` as ``--flag-name`` (the value after ``=`` untouched): the one spelling
    the parsers know, so both spellings work for every flag of every command."""
    out = []
    for item in argv:
        if item.startswith("--") and len(item) > 2 and item[2] != "-":
            key, sep, value = item.partition("=")
            item = key.replace("_", "-") + sep + value
        out.append(item)
    return out


def flag_key(item: str) -> str:
    """The setting a ``--flag-name[=value]`` argument names, as its field name (``flag_name``)."""
    return item[2:].split("=", 1)[0].replace("-", "_")


def check_unique_flags(argv: Iterable[str]) -> None:
    """Raise ``ConfigError`` when one setting is given twice (``--max_lr=1 --max-lr 2``): the
    second would silently win. Hyphens and underscores name the same flag."""
    seen: dict[str, str] = {}
    for item in argv:
        if not item.startswith("--") or item == "--":
            continue
        key = flag_key(item)
        if key in seen:
            raise ConfigError(f"{seen[key]} and {item.split('=', 1)[0]} set the same option: give it once")
        seen[key] = item.split("=", 1)[0]


def check_known_key(key: str, known: dict) -> None:
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=3)
        hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
        raise ConfigError(f"unknown config key --{key}{hint} (--help lists every key)")


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A new config with ``overrides`` (dotted keys; string values are converted) applied.

    Nested dataclasses are rebuilt, so ``__post_init__`` validation runs again. A field whose
    default is None and whose current value is what None resolves to (a derived value such as
    ``d_ff`` from ``d_model``) is derived afresh unless it is overridden itself.
    """
    known = flatten_fields(config)
    converted: dict[str, Any] = {}
    for key, value in overrides.items():
        check_known_key(key, known)
        annotation = known[key][0]
        converted[key] = convert_value(value, annotation, key) if isinstance(value, str) and annotation is not str else value
    return _rebuild(config, converted)


def _rebuild(config: Any, overrides: dict[str, Any]) -> Any:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        nested = {k[len(f.name) + 1 :]: v for k, v in overrides.items() if k.startswith(f.name + ".")}
        if dataclasses.is_dataclass(value) and nested:
            changes[f.name] = _rebuild(value, nested)
        elif f.name in overrides:
            changes[f.name] = overrides[f.name]
    if not changes:
        return config
    for name in _derived_fields(config):
        changes.setdefault(name, None)
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"invalid {type(config).__name__}: {e}") from e


def _derived_fields(config: Any) -> list[str]:
    """Fields with default None whose value equals what ``__post_init__`` derives from None."""
    derived = []
    for f in dataclasses.fields(config):
        if f.default is not None or getattr(config, f.name) is None or not f.init:
            continue
        try:
            rederived = dataclasses.replace(config, **{f.name: None})
        except (ValueError, TypeError):
            continue
        if getattr(rederived, f.name) == getattr(config, f.name):
            derived.append(f.name)
    return derived


def add_dataclass_arguments(parser: argparse.ArgumentParser, config: Any, title: str = "config",
                            exclude: Iterable[str] = ()) -> None:
    """Document every field of ``config`` as ``--key-name=value`` in ``parser``'s help (also
    ``--key_name``: ``cli_main`` turns underscores into hyphens, so every command takes both),
    except the ``exclude``d keys (a command whose own flag of that name sets the field). Values are parsed by
    ``parse_overrides``/``apply_overrides``, so pass the parser's leftovers there."""
    group = parser.add_argument_group(title, "override any field as --key=value (nested: --model.key=value)")
    skipped = set(exclude)
    for key, (annotation, value) in flatten_fields(config).items():
        if key in skipped:
            continue
        flag_options = {"nargs": "?", "const": "true"} if annotation is bool else {}
        spellings = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*spellings, metavar="VALUE", default=argparse.SUPPRESS, dest=f"{FIELD_DEST}{key}",
                           help=f"{_type_name(annotation)} (default: {value!r})", **flag_options)


def overrides_from_namespace(namespace: argparse.Namespace) -> dict[str, str]:
    """The ``--key=value`` flags that ``add_dataclass_arguments`` collected in ``namespace``."""
    return {k[len(FIELD_DEST):]: v for k, v in vars(namespace).items() if k.startswith(FIELD_DEST)}


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
