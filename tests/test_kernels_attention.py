"""Triton flash attention against the from-scratch reference and F.scaled_dot_product_attention.

Under the interpreter the tiles are 16 x 16, so sequence lengths like 37 and 50 cover several
key tiles, the causal diagonal, and ragged tails in both queries and keys.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tritonlm.kernels import attention, attention_reference
from bench.kernel_checks import assert_all_close, output_and_grads

DTYPES = [
    pytest.param(torch.float32, 2e-5, 1e-4, id="fp32"),
    pytest.param(torch.bfloat16, 4e-2, 3e-2, id="bf16"),
    pytest.param(torch.float16, 5e-3, 5e-3, id="fp16"),
]
# (batch, heads, seq, head_dim): head dims 8 (padded to 16) to 128, non-power-of-two lengths and
# head dims, a single position.
SHAPES = [(1, 2, 37, 16), (2, 1, 50, 24), (1, 1, 33, 64), (1, 1, 19, 128), (1, 1, 1, 32), (1, 3, 19, 8)]


def _inputs(device, shape, k_len=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    b, h, s, d = shape
    k_len = s if k_len is None else k_len
    q = torch.randn(b, h, s, d, generator=gen)
    k = torch.randn(b, h, k_len, d, generator=gen)
    v = torch.randn(b, h, k_len, d, generator=gen)
    do = torch.randn(b, h, s, d, generator=gen)
    return [t.to(device) for t in (q, k, v, do)]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_attention_matches_reference_and_sdpa(device, shape, causal, dtype, atol, rtol):
    q, k, v, do = _inputs(device, shape, seed=sum(shape))
    got = output_and_grads(lambda *a: attention(*a, causal=causal, backend="triton"), [q, k, v], do, dtype)
    ref = output_and_grads(lambda *a: attention_reference(*a, causal=causal), [q, k, v], do, dtype)
    sdpa = output_and_grads(lambda *a: F.scaled_dot_product_attention(*a, is_causal=causal),
                            [t.to(dtype) for t in (q, k, v)], do.to(dtype), torch.float32)
    names = ["out", "dq", "dk", "dv"]
    assert got[0].dtype == dtype and all(g.dtype == dtype for g in got[1])
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], atol, rtol, names)
    assert_all_close([got[0], *got[1]], [sdpa[0], *sdpa[1]], atol, rtol, names)


@pytest.mark.parametrize("q_len, k_len", [(1, 45), (20, 37)], ids=["decode-step", "suffix"])
def test_causal_attention_with_fewer_queries_than_keys(device, q_len, k_len):
    """Queries are the last q_len positions (KV-cached decoding): the mask is aligned at the end."""
    q, k, v, do = _inputs(device, (1, 2, q_len, 32), k_len=k_len, seed=q_len)
    got = output_and_grads(lambda *a: attention(*a, causal=True, backend="triton"), [q, k, v], do)
    ref = output_and_grads(lambda *a: attention_reference(*a, causal=True), [q, k, v], do)
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], 2e-5, 1e-4, ["out", "dq", "dk", "dv"])


def test_attention_accepts_strided_views(device):
    """The model passes q, k, v as (batch, seq, heads, d) transposed views: no copy needed."""
    b, s, h, d = 2, 21, 3, 16
    qkv = torch.randn(b, s, 3, h, d, device=device)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (b, h, s, d), strided
    assert not q.is_contiguous()
    torch.testing.assert_close(attention(q, k, v, backend="triton"), attention_reference(q, k, v, causal=True),
                               atol=2e-5, rtol=1e-4)


def test_attention_is_stable_for_large_scores(device):
    q, k, v, _ = _inputs(device, (1, 1, 40, 32), seed=3)
    q, k = 30 * q, 30 * k  # scores in the thousands: a naive exp overflows
    got = attention(q, k, v, causal=True, backend="triton")
    assert torch.isfinite(got).all()
    # Against a float64 recomputation: with scores in the thousands, float32 rounding of a score
    # (~1e-4 absolute) moves the output by ~1e-4, whichever order the scale is applied in.
    exact = attention_reference(q.double(), k.double(), v.double(), causal=True).float()
    torch.testing.assert_close(got, exact, atol=4e-4, rtol=1e-3)
    torch.testing.assert_close(attention_reference(q, k, v, causal=True), exact, atol=4e-4, rtol=1e-3)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES[:2])
def test_attention_long_sequence_spans_many_tiles(device, dtype, atol, rtol):
    """300 positions: many key tiles under the interpreter (16 wide) and on the GPU (64-128 wide),
    so full tiles, diagonal tiles and the ragged tail all run on either."""
    q, k, v, do = _inputs(device, (1, 1, 300, 64), seed=300)
    got = output_and_grads(lambda *a: attention(*a, causal=True, backend="triton"), [q, k, v], do, dtype)
    want = output_and_grads(lambda *a: F.scaled_dot_product_attention(*a, is_causal=True),
                            [t.to(dtype) for t in (q, k, v)], do.to(dtype), torch.float32)
    assert_all_close([got[0], *got[1]], [want[0], *want[1]], atol, rtol, ["out", "dq", "dk", "dv"])


# A layout whose sequence stride is 2^27 elements: row 16 starts at element 2^31, where a 32-bit
# offset wraps around. Only the 20 rows used are ever touched, so the 5 GB tensor costs a few
# pages. It runs in a subprocess: a wrapped offset reads outside the tensor and kills the process.
_HUGE_STRIDE_CHECK = """
import os, sys, torch
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
import torch.nn.functional as F
from tritonlm import kernels
device = "cuda" if torch.cuda.is_available() else "cpu"
seq, d, stride = 20, 16, 2**27
storage = torch.empty(stride * (seq - 1) + 3 * d, dtype=torch.float16, device=device)
small = [torch.randn(1, 1, seq, d, generator=torch.Generator().manual_seed(i)).half().to(device) for i in range(3)]
views = []
for i, s in enumerate(small):  # q, k, v side by side in every row: (batch, seq, 3, d)-like strides
    view = storage.as_strided((1, 1, seq, d), (0, 0, stride, 1), storage_offset=i * d)
    view.copy_(s)
    views.append(view.detach().requires_grad_())
do = torch.randn(1, 1, seq, d, generator=torch.Generator().manual_seed(9)).half().to(device)
out = kernels.attention(*views, causal=True, backend="triton")
out.backward(do)
leaves = [s.float().requires_grad_() for s in small]
want = F.scaled_dot_product_attention(*leaves, is_causal=True)
want.backward(do.float())
errors = [(out.float() - want).abs().max().item()] + [(v.grad.float() - s.grad).abs().max().item()
                                                       for v, s in zip(views, leaves)]
print("max errors", errors)
sys.exit(0 if max(errors) < 2e-2 else 1)
"""


def test_attention_row_offsets_past_2_to_the_31_elements():
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _HUGE_STRIDE_CHECK], cwd=repo, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr[-2000:]}"


def test_attention_grid_puts_batch_heads_on_the_unbounded_axis(device):
    from tritonlm.kernels._attention_tiles import MAX_GRID_YZ, attention_grid
    from bench.kernel_checks import record_launches

    q, k, v, do = _inputs(device, (3, 5, 37, 16), seed=11)
    with record_launches() as log:
        out = attention(*(t.requires_grad_() for t in (q, k, v)), causal=True, backend="triton")
        out.backward(do)
    assert len(log.grids) == 4 and all(grid[0] == 15 for grid in log.grids), log.grids
    # A million (batch, head) pairs: far past 65,535 on axis 0, the tiles on axis 1 within it.
    huge = attention_grid(1_000_000, 8192, "BLOCK_M")({"BLOCK_M": 64})
    assert huge == (1_000_000, 128) and huge[1] <= MAX_GRID_YZ


def test_attention_refuses_sequences_longer_than_the_grid_covers():
    from tritonlm.kernels._attention_tiles import MAX_SEQ_LEN

    q = torch.empty(1, 1, MAX_SEQ_LEN + 1, 16, device="meta")
    with pytest.raises(ValueError, match="exceed the .* the launch grid covers"):
        torch.ops.tritonlm.attention_forward(q, q, q, True)
