"""A config file in place of flags: TOML whose keys are the flags' (tables for nested configs).

    # run.toml
    train_data = "corpus.bin"
    max_iters = 2000
    betas = [0.9, 0.95]
    max_lr = 3e-3
    [model]
    d_model = 256

``read_config_file`` turns it into the same ``{"dotted.key": "value"}`` overrides a command line
gives (so values are checked and converted by ``util.cli`` exactly as flags are; ``"none"`` is
None, as on the command line), and ``write_config_file`` writes the file that reproduces a
config: every field, so a run can be repeated from its folder alone.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .cli import ConfigError, check_known_key, flatten_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_config_file(path: str | os.PathLike, config: Any) -> dict[str, str]:
    """The overrides in the TOML file ``path`` for the dataclass ``config``; unknown keys, and
    values of the wrong type, are ``ConfigError``s naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    known = flatten_fields(config)
    overrides = {}
    for key, value in _flatten(data).items():
        try:
            check_known_key(key, known)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        overrides[key] = _as_flag_text(value)
    return overrides


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _as_flag_text(value: Any) -> str:
    """A TOML value as the text its flag would take."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_flag_text(v) for v in value)
    return str(value)


def write_config_file(config: Any, path: str | os.PathLike, header: str = "") -> Path:
    """Write every field of the dataclass ``config`` as TOML (None as "none"), atomically."""
    lines = [f"# {line}" for line in header.splitlines()]
    tables = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            tables.append((field.name, value))
        else:
            lines.append(f"{field.name} = {_toml_value(value)}")
    for name, nested in tables:
        lines += ["", f"[{name}]"] + [f"{f.name} = {_toml_value(getattr(nested, f.name))}"
                                       for f in dataclasses.fields(nested)]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
