"""The one registry of recipes (``train.recipes``): every recipe listed, typed and validated,
read alike by ``train.train``, the leaderboard and the experiments; unknown names name the choices."""

from __future__ import annotations

import dataclasses

import pytest

from tritonlm.train.config import TrainConfig
from tritonlm.train.recipes import (LEADERBOARD_CHOICES, RECIPES, LeaderboardConfig, Recipe, get_recipe,
                                    leaderboard_recipe, recipe_config)


def test_the_registry_lists_every_recipe_and_each_is_typed():
    assert list(RECIPES) == ["tiny", "gutenberg-cpu", "tinystories", "cpu", "cpu-plain", "h100", "experiment",
                             "handout-tinystories", "handout-owt"]
    for name, recipe in RECIPES.items():
        assert isinstance(recipe, Recipe) and recipe.name == name and recipe.description
        assert isinstance(recipe.train, TrainConfig)
        assert recipe.leaderboard is None or isinstance(recipe.leaderboard, LeaderboardConfig)
    assert LEADERBOARD_CHOICES == ("auto", "cpu", "cpu-plain", "h100", "handout-tinystories", "handout-owt")


def test_a_recipe_gives_a_fresh_config_each_time():
    first = recipe_config("tiny")
    first.model.d_model = 8
    assert recipe_config("tiny").model.d_model == 64 and get_recipe("gutenberg_cpu").name == "gutenberg-cpu"


def test_unknown_names_give_a_clear_error_naming_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'nope'; choose one of tiny, gutenberg-cpu, tinystories, "
                                         "cpu, cpu-plain, h100, experiment, handout-tinystories, handout-owt"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="unknown preset 'tiny'; choose one of auto, cpu, cpu-plain, h100, "
                                         "handout-tinystories, handout-owt"):
        leaderboard_recipe("tiny")
    assert leaderboard_recipe("cpu") is RECIPES["cpu"]


def test_recipes_are_validated():
    with pytest.raises(ValueError, match="lower-case words"):
        Recipe("Big_One", "a recipe", TrainConfig())
    with pytest.raises(ValueError, match="description"):
        Recipe("big", "", TrainConfig())
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["cpu"].name = "gpu"


def test_the_plain_recipe_is_the_speedrun_baseline_and_differs_from_cpu_only_in_its_levers():
    plain, cpu = RECIPES["cpu-plain"].train, RECIPES["cpu"].train
    assert (plain.optimizer, plain.dtype, plain.compile, plain.model.ffn) == ("adamw", "fp32", False, "swiglu")
    assert plain.budget_seconds == cpu.budget_seconds and plain.device == cpu.device == "cpu"
    assert RECIPES["cpu-plain"].leaderboard == RECIPES["cpu"].leaderboard  # the same data, the same tokenizer
    shape = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads")
    assert [getattr(plain.model, f) for f in shape] == [getattr(cpu.model, f) for f in shape]


def test_the_handout_recipes_have_the_handouts_shape_and_its_40m_token_goal():
    """CS336 assignment 1's TinyStories model (and its OpenWebText vocabulary), trained for a
    number of steps, not a time budget, so a resumed or shared run trains alike."""
    for name, vocab in (("handout-tinystories", 10_000), ("handout-owt", 32_000)):
        recipe = RECIPES[name]
        m, t = recipe.train.model, recipe.train
        assert (m.vocab_size, m.context_length, m.d_model, m.d_ff, m.num_layers, m.num_heads) == (
            vocab, 256, 512, 1344, 4, 16)
        assert recipe.leaderboard.vocab_size == vocab and t.budget_seconds is None
        assert 40_000_000 <= t.max_iters * t.tokens_per_step_per_rank < 40_000_000 + t.tokens_per_step_per_rank
