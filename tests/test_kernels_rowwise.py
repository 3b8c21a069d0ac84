"""Triton RMSNorm and softmax against the from-scratch references and the torch built-ins.

Runs the kernels under TRITON_INTERPRET=1 on the CPU (see conftest.py), on the GPU when present.
Shapes are small but awkward: one row, odd widths, rows longer than one block (the interpreter's
row block is 256 wide, so 300- and 1000-wide rows take the multi-sweep path), extra dims.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tritonlm.kernels import rmsnorm, rmsnorm_reference, softmax, softmax_reference
from tritonlm.kernels._blocks import row_blocks
from bench.kernel_checks import record_launches
from bench.kernel_checks import assert_all_close, output_and_grads

# (dtype, atol, rtol) together: each dtype is checked at its own precision.
DTYPES = [
    pytest.param(torch.float32, 2e-5, 1e-5, id="fp32"),
    pytest.param(torch.bfloat16, 3e-2, 2e-2, id="bf16"),
    pytest.param(torch.float16, 4e-3, 4e-3, id="fp16"),
]
# 17,000 > the GPU row block (16,384), so the multi-sweep path also runs on a GPU. QK-norm's
# (batch, heads, seq, head_dim) rows of 64 and 128 come several to a tile, with a ragged last tile
# (78 and 55 rows: not multiples of the rows per tile, on the GPU or under the interpreter).
ROW_SHAPES = [(1, 7), (3, 37), (2, 3, 300), (5, 1000), (4, 256), (1, 17_000), (2, 3, 13, 64), (5, 11, 128)]


@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_rmsnorm_matches_reference_and_builtin(device, shape, dtype, atol, rtol):
    gen = torch.Generator().manual_seed(hash(shape) % 2**31)
    x = torch.randn(shape, generator=gen).to(device)
    w = (1 + 0.5 * torch.randn(shape[-1], generator=gen)).to(device)
    dy = torch.randn(shape, generator=gen).to(device)
    eps = 1e-5

    got = output_and_grads(lambda a, b: rmsnorm(a, b, eps, backend="triton"), [x, w], dy, dtype)
    ref = output_and_grads(lambda a, b: rmsnorm_reference(a, b, eps), [x, w], dy, dtype)
    # The built-in, evaluated in float32 on the same (rounded) inputs: the precise answer.
    builtin = output_and_grads(lambda a, b: F.rms_norm(a, (shape[-1],), b, eps),
                               [x.to(dtype), w.to(dtype)], dy.to(dtype), torch.float32)

    names = ["y", "dx", "dweight"]
    assert got[0].dtype == dtype and got[1][0].dtype == dtype and got[1][1].dtype == dtype
    # dweight sums over rows: its tolerance grows with the number of rows.
    rows = x.numel() // shape[-1]
    assert_all_close([got[0], got[1][0]], [ref[0], ref[1][0]], atol, rtol, names[:2])
    assert_all_close([got[0], got[1][0]], [builtin[0], builtin[1][0]], atol, rtol, names[:2])
    assert_all_close([got[1][1]], [builtin[1][1]], atol * rows, rtol, names[2:])
    assert_all_close([got[1][1]], [ref[1][1]], atol * rows, rtol, names[2:])


def test_rmsnorm_noncontiguous_input_and_mixed_weight_dtype(device):
    x = torch.randn(37, 6, device=device).t()  # (6, 37), not row-contiguous
    w = torch.rand(37, device=device, dtype=torch.float32)
    got = output_and_grads(lambda a, b: rmsnorm(a, b, backend="triton"), [x, w])
    ref = output_and_grads(lambda a, b: rmsnorm_reference(a, b), [x, w])
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], 1e-5, 1e-5, ["y", "dx", "dweight"])


@pytest.mark.parametrize("shape, dim", [((1, 7), -1), ((3, 37), -1), ((2, 300, 3), 1), ((5, 1000), -1),
                                        ((6, 5), 0), ((1, 17_000), -1)], ids=str)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_softmax_matches_reference_and_builtin(device, shape, dim, dtype, atol, rtol):
    gen = torch.Generator().manual_seed(hash(shape) % 2**31)
    x = (4 * torch.randn(shape, generator=gen)).to(device)  # wide range: large logits
    dy = torch.randn(shape, generator=gen).to(device)

    got = output_and_grads(lambda a: softmax(a, dim, backend="triton"), [x], dy, dtype)
    ref = output_and_grads(lambda a: softmax_reference(a, dim), [x], dy, dtype)
    builtin = output_and_grads(lambda a: F.softmax(a, dim), [x.to(dtype)], dy.to(dtype), torch.float32)

    assert got[0].dtype == dtype
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], atol, rtol, ["y", "dx"])
    assert_all_close([got[0], *got[1]], [builtin[0], *builtin[1]], atol, rtol, ["y", "dx"])
    torch.testing.assert_close(got[0].float().sum(dim), torch.ones_like(got[0].float().sum(dim)), atol=atol * 8,
                               rtol=0)


@pytest.mark.parametrize("width", [40, 600], ids=["one-block", "multi-block"])
def test_softmax_handles_masked_rows_like_torch(device, width):
    x = torch.full((3, width), float("-inf"), device=device)
    x[0, width - 3] = 1.0  # only a late column is finite: first blocks are all -inf
    x[1, ::7] = torch.arange(len(range(0, width, 7)), device=device, dtype=torch.float32)
    # row 2 stays entirely -inf: NaN, as torch gives
    got = softmax(x, backend="triton")
    torch.testing.assert_close(got, F.softmax(x, -1), equal_nan=True)


@settings(max_examples=12, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 700), scale=st.floats(0.01, 30.0), seed=st.integers(0, 2**16))
def test_rowwise_kernels_on_random_shapes_and_scales(rows, cols, scale, seed):
    """Random widths (one block or several under the interpreter) and input scales, float32."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(rows, cols, generator=gen)).to(device)
    w = torch.randn(cols, generator=gen).to(device)
    dy = torch.randn(rows, cols, generator=gen).to(device)
    for fn, ref, inputs in ((lambda a, b: rmsnorm(a, b, backend="triton"), rmsnorm_reference, [x, w]),
                            (lambda a: softmax(a, backend="triton"), softmax_reference, [x])):
        got, want = output_and_grads(fn, inputs, dy), output_and_grads(ref, inputs, dy)
        assert_all_close([got[0], *got[1]], [want[0], *want[1]], 1e-4, 1e-4, ["y"] + ["grad"] * len(inputs))


def test_narrow_rows_share_a_program(device):
    """QK-norm rows (64 wide) are normalised several per program, not one program per row."""
    x = torch.randn(2, 3, 13, 64, device=device)  # 78 rows
    w = torch.ones(64, device=device)
    with record_launches() as log:
        rmsnorm(x, w, backend="triton")
    rows = row_blocks(64, tile_rows=True).rows
    assert rows > 1
    assert log.grids[log.names.index("_rmsnorm_forward_kernel")] == (math.ceil(78 / rows),)
