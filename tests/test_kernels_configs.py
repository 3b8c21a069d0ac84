"""The configurations the launchers and autotuners choose, per GPU: every attention tile kept
for a device fits its shared memory (an RTX 4090 never gets an H100 tile), the autotuning cap
holds, and narrow rows are tiled. Pure Python: the choices are made before any kernel runs.
Whether each listed tile compiles without spilling is ``test_kernels_compile.py``'s job."""

from __future__ import annotations

import pytest
import torch
import triton

from tritonlm.kernels._blocks import (MAX_CONFIGS_ENV, GpuTarget, attention_config_pruner, attention_shared_bytes,
                                      attention_tile_configs, attention_tiles, head_dim_block, row_blocks,
                                      simulate_target)

KINDS = ("forward", "dkdv", "dq")
HEAD_DIMS = (16, 32, 64, 80, 128, 256)


@pytest.fixture
def compiled_mode(monkeypatch):
    """Choose as on a GPU (the interpreter uses one small tile for everything)."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv(MAX_CONFIGS_ENV, raising=False)


@pytest.mark.parametrize("arch", [80, 86, 89, 90])
def test_every_attention_tile_fits_the_device(compiled_mode, arch):
    target = GpuTarget.for_arch(arch)
    for kind in KINDS:
        for float32 in (False, True):
            for d in HEAD_DIMS:
                tiles = attention_tiles(kind, float32, d, target)
                assert tiles, (kind, float32, d)
                for tile in tiles:
                    need = attention_shared_bytes(kind, tile, head_dim_block(d), 4 if float32 else 2)
                    assert need <= target.shared_bytes, (arch, kind, float32, d, tile, need)


def test_an_h100_gets_larger_tiles_than_an_rtx_4090(compiled_mode):
    def largest(arch):
        return max(attention_shared_bytes("forward", t, 128, 2)
                   for t in attention_tiles("forward", False, 128, GpuTarget.for_arch(arch)))

    assert GpuTarget.for_arch(89).shared_bytes == 101376 and GpuTarget.for_arch(90).shared_bytes == 232448
    assert largest(90) > GpuTarget.for_arch(89).shared_bytes >= largest(89)


def test_autotuning_cap(compiled_mode, monkeypatch):
    full = attention_tiles("forward", False, 64, GpuTarget.for_arch(90))
    assert len(full) > 1
    monkeypatch.setenv(MAX_CONFIGS_ENV, "1")
    assert attention_tiles("forward", False, 64, GpuTarget.for_arch(90)) == full[:1]
    monkeypatch.setenv(MAX_CONFIGS_ENV, "zero")
    with pytest.raises(ValueError, match=MAX_CONFIGS_ENV):
        attention_tiles("forward", False, 64, GpuTarget.for_arch(90))


def test_pruner_keeps_the_configs_of_the_inputs_and_the_device(compiled_mode):
    configs = attention_tile_configs("dkdv")
    q = torch.empty(1, 1, 1, 128, dtype=torch.bfloat16)
    for arch in (80, 89, 90):
        with simulate_target(GpuTarget.for_arch(arch)):
            kept = attention_config_pruner("dkdv")(configs, {"Q": q}, HEAD_DIM=128)
        want = attention_tiles("dkdv", False, 128, GpuTarget.for_arch(arch))
        assert [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in kept] == want
        assert all(isinstance(c, triton.Config) for c in kept)


@pytest.mark.parametrize("width, rows", [(64, 32), (128, 16), (1000, 2), (2048, 1), (4096, 1), (50304, 1)])
def test_narrow_rows_come_several_to_a_tile_on_the_gpu(compiled_mode, width, rows):
    blocks = row_blocks(width, tile_rows=True)
    assert blocks.rows == rows and blocks.rows * blocks.block <= max(2048, blocks.block)
    assert row_blocks(width).rows == 1  # kernels that take one row per program
