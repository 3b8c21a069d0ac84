"""Flags generated from the dataclass configs: overrides, nesting, types, unknown keys."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

import pytest

from tritonlm.util.cli import ConfigError, add_dataclass_arguments, apply_overrides, parse_overrides
from tritonlm.train.config import TrainConfig
from tritonlm.train.recipes import RECIPES, recipe_config
from tritonlm.train.train import config_from_args, main


def config_from_argv(argv: list[str], config: TrainConfig) -> TrainConfig:
    """``argv``'s ``--key=value`` overrides applied to ``config``, as the CLIs apply their leftovers."""
    return apply_overrides(config, parse_overrides(argv, config))


def test_overrides_convert_types_and_nested_fields():
    cfg = config_from_argv(["--batch_size=3", "--max_lr", "2e-3", "--betas=0.8,0.9", "--budget_seconds=60",
                            "--max_iters=none", "--compile=false", "--resume", "--model.d_model=96",
                            "--model.num_heads=4", "--model.tie_embeddings=yes", "--schedule=wsd", "--max-iters=1e3"],
                           recipe_config("tiny"))
    assert (cfg.batch_size, cfg.max_lr, cfg.betas, cfg.budget_seconds) == (3, 2e-3, (0.8, 0.9), 60.0)
    assert cfg.max_iters == 1000 and cfg.compile is False and cfg.resume is True and cfg.schedule == "wsd"
    assert cfg.model.d_model == 96 and cfg.model.tie_embeddings is True
    assert cfg.model.d_ff == 256  # derived from the new d_model (8/3 * 96 rounded to 64), not kept from 64


def test_explicit_derived_field_wins():
    cfg = config_from_argv(["--model.d_model=96", "--model.d_ff=100"], recipe_config("tiny"))
    assert cfg.model.d_ff == 100


@pytest.mark.parametrize("argv, message", [
    (["--batch_sise=3"], "unknown config key --batch_sise; did you mean --batch_size"),
    (["--model.dmodel=3"], "did you mean --model.d_model"),
    (["--batch_size=three"], "--batch_size expects int, got 'three'"),
    (["--compile=maybe"], "expects true/false"),
    (["--betas=0.9"], "expects 2 comma-separated values"),
    (["--batch_size=0"], "batch_size must be positive"),
    (["--schedule=linear"], "schedule='linear' is not one of cosine, wsd"),
    (["--model.d_model=100"], "head dimension must be even"),
    (["batch_size=3"], "expected --key=value"),
])
def test_bad_overrides_name_the_problem(argv, message):
    with pytest.raises(ConfigError) as err:
        config_from_argv(argv, recipe_config("tiny"))
    assert message in str(err.value)


@dataclass
class Inner:
    width: int = 4
    name: str | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5
    tags: tuple[str, ...] = ("a",)


def test_generic_helper_on_any_nested_dataclass():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer())
    assert "--inner.width" in parser.format_help()
    out = apply_overrides(Outer(), parse_overrides(["--inner.width=9", "--inner.name=x", "--tags=b,c"], Outer()))
    assert out == Outer(Inner(9, "x"), 0.5, ("b", "c"))
    assert apply_overrides(Outer(), {"rate": 2.0}).rate == 2.0  # typed values pass through


def test_command_line_presets_help_and_errors(capsys):
    for name in RECIPES:
        assert isinstance(recipe_config(name), TrainConfig)
    cfg, _ = config_from_args(["--preset", "gutenberg-cpu", "--model.num_layers=2", "--logger", "none"])
    assert cfg.model.num_layers == 2 and cfg.budget_seconds == 600
    cfg, _ = config_from_args(["--kernels", "triton,attention=torch"])
    assert cfg.model.kernels == "triton,attention=torch"
    with pytest.raises(SystemExit):
        config_from_args(["--kernels=cuda"])
    assert "cuda" in capsys.readouterr().err
    assert main(["--preset=tiny", "--print-config", "--seed=5"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 5
    with pytest.raises(SystemExit) as exit_info:
        main(["--no_such_key=1"])
    assert exit_info.value.code == 2 and "unknown config key --no_such_key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--preset=nope"])
    assert "unknown preset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--model.d_model" in capsys.readouterr().out
