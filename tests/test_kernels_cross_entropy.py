"""Triton cross-entropy and fused linear + cross-entropy against the reference and F.cross_entropy.

Vocabularies above 65,536 take the interpreter's multi-tile path (4,096-wide vocab tiles); small
ones the single-block path. Some targets are ``ignore_index``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tritonlm.kernels import cross_entropy, cross_entropy_reference, linear_cross_entropy, linear_cross_entropy_reference
from bench.kernel_checks import assert_all_close, output_and_grads, record_launches
from tritonlm.kernels.linear_cross_entropy import LinearCrossEntropyFunction

DTYPES = [
    pytest.param(torch.float32, 1e-5, 1e-5, id="fp32"),
    pytest.param(torch.bfloat16, 1e-2, 2e-2, id="bf16"),
    pytest.param(torch.float16, 2e-3, 2e-3, id="fp16"),
]
IGNORE = -100


def _targets(shape, vocab, gen, ignore_every=3):
    targets = torch.randint(0, vocab, shape, generator=gen)
    flat = targets.view(-1)
    if flat.numel() > 1:
        flat[::ignore_every] = IGNORE
    return targets


@pytest.mark.parametrize("shape, vocab", [((1,), 7), ((3,), 37), ((2, 5), 300), ((3,), 70_001), ((2,), 65_537)],
                         ids=str)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_cross_entropy_matches_reference_and_builtin(device, shape, vocab, dtype, atol, rtol):
    gen = torch.Generator().manual_seed(vocab)
    logits = (5 * torch.randn(*shape, vocab, generator=gen)).to(device)
    targets = _targets(shape, vocab, gen).to(device)
    grad_scale = torch.tensor(1.7, device=device)  # the upstream gradient is applied in backward

    got = output_and_grads(lambda x: cross_entropy(x, targets, IGNORE, backend="triton"), [logits], grad_scale, dtype)
    ref = output_and_grads(lambda x: cross_entropy_reference(x, targets, IGNORE), [logits], grad_scale, dtype)
    builtin = output_and_grads(
        lambda x: F.cross_entropy(x.reshape(-1, vocab), targets.reshape(-1), ignore_index=IGNORE),
        [logits.to(dtype)], grad_scale, torch.float32)
    assert got[0].dtype == torch.float32 and got[1][0].dtype == dtype
    # The loss is a float32 mean of float32 row losses in every case: tight for all dtypes.
    assert_all_close([got[0]], [builtin[0]], 1e-5, 1e-5, ["loss"])
    assert_all_close([got[0]], [ref[0]], 1e-5, 1e-5, ["loss"])
    assert_all_close(got[1], builtin[1], atol, rtol, ["dlogits"])
    assert_all_close(got[1], ref[1], atol, rtol, ["dlogits"])


def _builtin_capped_loss(logits, targets, softcap, z_loss):
    """Soft-capping and z-loss composed from torch built-ins (tanh, logsumexp, F.cross_entropy)."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1)
    capped = softcap * torch.tanh(logits / softcap) if softcap else logits
    keep = targets != IGNORE
    lse = torch.logsumexp(capped, dim=-1)
    return F.cross_entropy(capped, targets, ignore_index=IGNORE) + z_loss * (lse.pow(2) * keep).sum() / keep.sum()


@pytest.mark.parametrize("softcap, z_loss", [(30.0, 0.0), (0.0, 1e-3), (15.0, 1e-2)], ids=str)
@pytest.mark.parametrize("vocab", [300, 70_001])
def test_cross_entropy_softcap_and_z_loss(device, softcap, z_loss, vocab):
    gen = torch.Generator().manual_seed(vocab + int(softcap))
    logits = (20 * torch.randn(4, vocab, generator=gen)).to(device)  # large: the cap matters
    targets = _targets((4,), vocab, gen).to(device)
    got = output_and_grads(lambda x: cross_entropy(x, targets, IGNORE, backend="triton", softcap=softcap,
                                                   z_loss=z_loss), [logits])
    ref = output_and_grads(lambda x: cross_entropy_reference(x, targets, IGNORE, softcap=softcap, z_loss=z_loss),
                           [logits])
    builtin = output_and_grads(lambda x: _builtin_capped_loss(x, targets, softcap, z_loss), [logits])
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], 2e-5, 2e-5, ["loss", "dlogits"])
    assert_all_close([got[0], *got[1]], [builtin[0], *builtin[1]], 2e-5, 2e-5, ["loss", "dlogits"])


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES[:2])
def test_linear_cross_entropy_softcap_and_z_loss(device, dtype, atol, rtol):
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(9, 24, generator=gen).to(device)
    weight = (3 * torch.randn(301, 24, generator=gen)).to(device)
    targets = _targets((9,), 301, gen).to(device)
    options = dict(softcap=30.0, z_loss=1e-3)
    got = output_and_grads(lambda h, w: LinearCrossEntropyFunction.apply(h, w, targets, IGNORE, 30.0, 1e-3, 4),
                           [hidden, weight], None, dtype)
    ref = output_and_grads(lambda h, w: linear_cross_entropy_reference(h, w, targets, IGNORE, **options),
                           [hidden, weight], None, dtype)
    builtin = output_and_grads(lambda h, w: _builtin_capped_loss(h @ w.t(), targets, **options),
                               [hidden.to(dtype), weight.to(dtype)], None, torch.float32)
    names = ["loss", "dhidden", "dweight"]
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], atol, rtol, names)
    assert_all_close([got[0], *got[1]], [builtin[0], *builtin[1]], atol, rtol, names)


def test_cross_entropy_ignored_rows_get_zero_gradient_and_all_ignored_is_nan(device):
    logits = torch.randn(4, 50, device=device, requires_grad=True)
    targets = torch.tensor([3, IGNORE, 7, IGNORE], device=device)
    cross_entropy(logits, targets, backend="triton").backward()
    assert (logits.grad[1] == 0).all() and (logits.grad[3] == 0).all()
    all_ignored = torch.full((4,), IGNORE, device=device)
    assert torch.isnan(cross_entropy(logits, all_ignored, backend="triton"))
    assert torch.isnan(F.cross_entropy(logits, all_ignored))


def test_second_backward_through_the_same_loss_raises_clearly(device):
    logits = torch.randn(3, 20, device=device, requires_grad=True)
    targets = torch.tensor([1, 2, 3], device=device)
    loss = cross_entropy(logits, targets, backend="triton")
    loss.backward(retain_graph=True)
    first = logits.grad.clone()
    torch.testing.assert_close(first, torch.autograd.grad(F.cross_entropy(logits, targets), logits)[0])
    with pytest.raises(RuntimeError, match="can backpropagate once"):
        loss.backward()


def test_cross_entropy_out_of_range_target_gives_nan_not_garbage(device):
    logits = torch.randn(2, 10, device=device)
    assert torch.isnan(cross_entropy(logits, torch.tensor([1, 10], device=device), backend="triton"))


@pytest.mark.parametrize("tokens, hidden_dim, vocab, chunk", [(10, 32, 70_001, None), (7, 24, 301, 3),
                                                              (1, 16, 50, None)], ids=str)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_linear_cross_entropy_matches_reference_and_builtin(device, tokens, hidden_dim, vocab, chunk, dtype, atol,
                                                             rtol):
    gen = torch.Generator().manual_seed(tokens * vocab)
    hidden = torch.randn(tokens, hidden_dim, generator=gen).to(device)
    weight = (torch.randn(vocab, hidden_dim, generator=gen) / hidden_dim**0.5).to(device)
    targets = _targets((tokens,), vocab, gen, ignore_every=4).to(device)

    upstream = torch.tensor(0.6, device=device)  # the loss is scaled (e.g. gradient accumulation)
    got = output_and_grads(lambda h, w: LinearCrossEntropyFunction.apply(h, w, targets, IGNORE, 0.0, 0.0, chunk),
                           [hidden, weight], upstream, dtype)
    ref = output_and_grads(lambda h, w: linear_cross_entropy_reference(h, w, targets, IGNORE), [hidden, weight],
                           upstream, dtype)
    builtin = output_and_grads(lambda h, w: F.cross_entropy(h @ w.t(), targets, ignore_index=IGNORE),
                               [hidden.to(dtype), weight.to(dtype)], upstream, torch.float32)
    names = ["loss", "dhidden", "dweight"]
    # 16-bit logits are rounded once (as in the reference), so the loss is compared at dtype precision.
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], atol, rtol, names)
    assert_all_close([got[0], *got[1]], [builtin[0], *builtin[1]], atol, rtol, names)


def test_linear_cross_entropy_public_function_and_leading_dims(device):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 3, 20, generator=gen).to(device)
    weight = torch.randn(33, 20, generator=gen).to(device)
    targets = torch.randint(0, 33, (2, 3), generator=gen).to(device)
    got = output_and_grads(lambda h, w: linear_cross_entropy(h, w, targets, backend="triton"), [hidden, weight])
    ref = output_and_grads(lambda h, w: linear_cross_entropy_reference(h, w, targets), [hidden, weight])
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], 1e-5, 1e-5, ["loss", "dhidden", "dweight"])


def test_linear_cross_entropy_with_transposed_inputs(device):
    """A tied / transposed weight and a strided hidden view must not change the result."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(12, 5, generator=gen).to(device).t()  # (5, 12), strided
    weight = torch.randn(12, 30, generator=gen).to(device).t()  # (30, 12), strided
    targets = torch.randint(0, 30, (5,), generator=gen).to(device)
    got = output_and_grads(lambda h, w: linear_cross_entropy(h, w, targets, backend="triton"), [hidden, weight])
    ref = output_and_grads(lambda h, w: linear_cross_entropy_reference(h, w, targets), [hidden, weight])
    assert_all_close([got[0], *got[1]], [ref[0], *ref[1]], 1e-5, 1e-5, ["loss", "dhidden", "dweight"])


def test_linear_cross_entropy_without_grad_computes_loss_only(device):
    hidden = torch.randn(6, 8, device=device)
    weight = torch.randn(40, 8, device=device)
    targets = torch.randint(0, 40, (6,), device=device)
    with torch.no_grad():
        got = linear_cross_entropy(hidden, weight, targets, backend="triton")
    torch.testing.assert_close(got, F.cross_entropy(hidden @ weight.t(), targets))


def test_overwrite_logits_puts_the_gradient_in_the_logits_buffer(device):
    """No second tokens x vocab buffer: the returned gradient is the logits' own storage."""
    gen = torch.Generator().manual_seed(21)
    base = torch.randn(6, 301, generator=gen).to(device).requires_grad_()
    targets = _targets((6,), 301, gen).to(device)
    want = torch.autograd.grad(F.cross_entropy(base, targets, ignore_index=IGNORE) * 0.3, base)[0]
    logits = base * 1.0  # an intermediate, as the LM head's output is
    loss = cross_entropy(logits, targets, backend="triton", overwrite_logits=True)
    (grad,) = torch.autograd.grad(loss * 0.3, logits)
    assert grad.data_ptr() == logits.data_ptr()
    torch.testing.assert_close(grad, want)
    torch.testing.assert_close(loss, F.cross_entropy(base, targets, ignore_index=IGNORE))


def test_default_cross_entropy_leaves_the_logits_intact(device):
    logits = torch.randn(4, 50, device=device, requires_grad=True)
    before = logits.detach().clone()
    cross_entropy(logits, torch.tensor([1, 2, IGNORE, 49], device=device), backend="triton").backward()
    assert torch.equal(logits.detach(), before)


def _gemm_counts(fn) -> dict[str, int]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    names = [e.name for e in prof.events()]
    return {op: names.count(f"aten::{op}") + names.count(f"aten::{op}_") for op in ("mm", "addmm")}


@pytest.mark.parametrize("grad_of", ["nothing", "hidden", "both"])
def test_linear_cross_entropy_runs_only_the_gemms_whose_gradient_is_wanted(device, grad_of):
    """Evaluation (no gradient) costs one GEMM per chunk; a frozen LM head skips the weight GEMM."""
    gen = torch.Generator().manual_seed(22)
    hidden = torch.randn(12, 16, generator=gen).to(device).requires_grad_(grad_of != "nothing")
    weight = torch.randn(40, 16, generator=gen).to(device).requires_grad_(grad_of == "both")
    targets = torch.randint(0, 40, (12,), generator=gen).to(device)
    counts = _gemm_counts(lambda: LinearCrossEntropyFunction.apply(hidden, weight, targets, IGNORE, 0.0, 0.0, 4))
    chunks = 3
    assert counts == {"nothing": {"mm": chunks, "addmm": 0}, "hidden": {"mm": 2 * chunks, "addmm": 0},
                      "both": {"mm": 2 * chunks, "addmm": chunks}}[grad_of]
    with torch.no_grad():  # grad mode off: loss only, whatever requires_grad says
        assert _gemm_counts(lambda: linear_cross_entropy(hidden, weight, targets, backend="triton"))["addmm"] == 0


def test_linear_cross_entropy_accumulates_the_weight_gradient_in_float32(device):
    """64 chunks of one token: accumulated in bf16 the weight gradient rounds 64 times."""
    gen = torch.Generator().manual_seed(23)
    hidden = torch.randn(64, 32, generator=gen).to(device)
    weight = (torch.randn(50, 32, generator=gen) / 32**0.5).to(device)
    targets = torch.randint(0, 50, (64,), generator=gen).to(device)
    exact = output_and_grads(lambda h, w: F.cross_entropy(h @ w.t(), targets),
                             [hidden.bfloat16(), weight.bfloat16()], dtype=torch.float64)[1][1]
    errors = {}
    for fp32 in (True, False):
        got = output_and_grads(lambda h, w: LinearCrossEntropyFunction.apply(h, w, targets, IGNORE, 0.0, 0.0, 1, fp32),
                               [hidden, weight], dtype=torch.bfloat16)[1][1]
        errors[fp32] = (got.double() - exact).abs().max().item()
    # Each token's bf16 gradient rounds either way; the float32 sum adds no error of its own.
    assert errors[True] < 0.5 * errors[False], errors
    assert errors[True] < 2**-6 * exact.abs().max().item(), errors


def _count_exponentials(fn) -> int:
    """Elements passed through exp/exp2 by interpreted kernels while ``fn`` runs."""
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    originals = {name: getattr(builder, name) for name in ("create_exp", "create_exp2")}
    count = 0

    def counting(original):
        def create(self, arg):
            nonlocal count
            count += arg.data.size
            return original(self, arg)

        return create

    for name, original in originals.items():
        setattr(builder, name, counting(original))
    try:
        fn()
    finally:
        for name, original in originals.items():
            setattr(builder, name, original)
    return count


@pytest.mark.parametrize("softcap, per_element", [(0.0, 1), (30.0, 2)], ids=["plain", "softcap"])
def test_cross_entropy_online_pass_takes_one_exponential_per_element(device, softcap, per_element):
    """Per-tile max: exp(x - max) once per logit (plus one per tile), and one more for tanh when
    soft-capped; a per-lane running max would take two for the sum alone."""
    if device != "cpu":
        pytest.skip("counts the interpreter's exponentials")
    from tritonlm.kernels._blocks import row_blocks
    from tritonlm.kernels.cross_entropy import _INTERPRETER_MAX_BLOCK

    vocab = 10_000
    blocks = row_blocks(vocab, interpreter_max_block=_INTERPRETER_MAX_BLOCK)
    assert not blocks.single_pass  # the online (multi-tile) path
    lanes = -(-vocab // blocks.block) * blocks.block
    logits = torch.randn(1, vocab)
    targets = torch.tensor([17])
    count = _count_exponentials(lambda: cross_entropy(logits, targets, backend="triton", softcap=softcap))
    tiles = lanes // blocks.block
    target_tanh = 1 if softcap else 0
    assert count == per_element * lanes + tiles + target_tanh


def test_linear_cross_entropy_float32_weight_grad_needs_no_product_per_chunk(device):
    """16-bit inputs, float32 accumulation: each chunk's weight gradient goes through the
    accumulate kernel (no vocab x hidden_dim product tensor), and matches the exact gradient."""
    gen = torch.Generator().manual_seed(24)
    hidden = torch.randn(12, 20, generator=gen).to(device)
    weight = (torch.randn(37, 20, generator=gen) / 20**0.5).to(device)
    targets = torch.randint(0, 37, (12,), generator=gen).to(device)
    h, w = hidden.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_()
    with record_launches() as log:
        counts = _gemm_counts(lambda: LinearCrossEntropyFunction.apply(h, w, targets, IGNORE, 0.0, 0.0, 4, True)
                              .backward())
    # per chunk: the logits and the hidden gradient are GEMMs, the weight gradient is the kernel
    assert log.count("_weight_grad_accumulate_kernel") == 3 and counts == {"mm": 6, "addmm": 0}, (log.names, counts)
    exact = output_and_grads(lambda a, b: F.cross_entropy(a @ b.t(), targets), [hidden.bfloat16(), weight.bfloat16()],
                             dtype=torch.float64)[1][1]
    torch.testing.assert_close(w.grad.double(), exact, atol=2e-3, rtol=2e-2)
