"""Resource accounting of a TransformerLM from its config: parameters, FLOPs, training memory.

Every figure is computed from the ``ModelConfig`` alone (no model is built), by the same rules
the model follows, and the tests check them against real models: parameter counts exactly
against instantiated models, forward FLOPs exactly against ``torch.utils.flop_counter``.

Conventions: a matmul of (m, k) by (k, n) costs 2*m*n*k FLOPs; only matmuls are counted (norms,
RoPE, softmax and element-wise ops are O(T d), negligible next to O(T d^2)); attention counts the
full T x T score and value matmuls, as the reference path computes them (a causal kernel could
skip about half). ``python -m model.accounting --help`` prints the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelConfig

GIB = 1024**3


# ------------------------------------------------------------------------------------ parameters
def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per group; a tied lm_head counts 0 (it is the embedding matrix). Sums to the
    number of distinct parameters of ``TransformerLM.from_config(cfg)``."""
    d, L = cfg.d_model, cfg.num_layers
    ffn_matrices = 3 if cfg.ffn == "swiglu" else 2
    norms_per_layer = 2 if cfg.norm != "none" else 0
    return {
        "token_embeddings": cfg.vocab_size * d,
        "attention (q,k,v,output)": L * 4 * d * d,
        "qk_norm": L * 2 * cfg.head_dim if cfg.qk_norm else 0,
        f"ffn ({cfg.ffn})": L * ffn_matrices * d * cfg.d_ff,
        "block norms (ln1, ln2)": L * norms_per_layer * d,
        "ln_final": d if cfg.norm == "pre" else 0,
        "lm_head": 0 if cfg.tie_embeddings else cfg.vocab_size * d,
    }


def count_parameters(cfg: ModelConfig) -> int:
    return sum(parameter_counts(cfg).values())


# ----------------------------------------------------------------------------------------- FLOPs
def forward_flops(cfg: ModelConfig, seq_len: int | None = None, batch_size: int = 1) -> dict[str, int]:
    """Forward-pass matmul FLOPs per group for ``batch_size`` sequences of ``seq_len`` tokens
    (default: the context length)."""
    T = seq_len or cfg.context_length
    d, L, f, V = cfg.d_model, cfg.num_layers, cfg.d_ff, cfg.vocab_size
    tokens = batch_size * T

    def mm(m: int, k: int, n: int) -> int:
        return 2 * m * k * n

    groups = {
        "attention q,k,v projections": L * 3 * mm(tokens, d, d),
        "attention scores Q K^T": L * batch_size * cfg.num_heads * mm(T, cfg.head_dim, T),
        "attention values P V": L * batch_size * cfg.num_heads * mm(T, T, cfg.head_dim),
        "attention output projection": L * mm(tokens, d, d),
        "ffn w1, w3 (up)" if cfg.ffn == "swiglu" else "ffn w1 (up)": L * (2 if cfg.ffn == "swiglu" else 1) * mm(tokens, d, f),
        "ffn w2 (down)": L * mm(tokens, f, d),
        "lm_head": mm(tokens, d, V),
    }
    return groups


def total_forward_flops(cfg: ModelConfig, seq_len: int | None = None, batch_size: int = 1) -> int:
    return sum(forward_flops(cfg, seq_len, batch_size).values())


def training_flops(cfg: ModelConfig, seq_len: int | None = None, batch_size: int = 1) -> int:
    """One training step: forward + backward, the backward costing twice the forward (the
    gradient w.r.t. both inputs of every matmul)."""
    return 3 * total_forward_flops(cfg, seq_len, batch_size)


# ---------------------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to train with AdamW (float32 master weights unless told otherwise)."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: dict[str, int]

    @property
    def activation_total(self) -> int:
        return sum(self.activations.values())

    @property
    def fixed(self) -> int:
        """What does not grow with the batch: parameters, gradients, AdamW moments."""
        return self.parameters + self.gradients + self.optimizer_state

    @property
    def total(self) -> int:
        return self.fixed + self.activation_total


def fused_ops(cfg: ModelConfig) -> set[str]:
    """Ops the config explicitly runs as Triton kernels ("triton", not "auto": accounting does not
    know the device) whose saved tensors differ from the reference path's."""
    plan = cfg.kernel_plan
    ops = {"attention"} if plan.attention == "triton" else set()
    if plan.cross_entropy == "triton":
        ops.add("cross_entropy")  # TransformerLM.loss then fuses the LM head with the loss
    return ops


def activation_elements(cfg: ModelConfig, seq_len: int | None = None, batch_size: int = 1) -> dict[str, int]:
    """Elements of the tensors the forward keeps for the backward pass, per group (no activation
    checkpointing). Counted op by op: an RMSNorm keeps its input and the per-row inverse RMS
    (reference and Triton alike); a matmul its input; attention the per-head q, k, v and its
    output, plus the T x T probabilities (reference) or the row log-sum-exp (flash attention);
    the SwiGLU/SiLU FFN its two projections (or the input and its sigmoid) and the gated
    product; the loss the exponentials of the logits and a few per-row statistics (reference)
    or, fused with the LM head (Triton), the gradients of the hidden states and of the head."""
    T = seq_len or cfg.context_length
    d, L, f, V, h = cfg.d_model, cfg.num_layers, cfg.d_ff, cfg.vocab_size, cfg.num_heads
    BT = batch_size * T
    fused = fused_ops(cfg)
    block_norms = (2 * (BT * d + BT) if cfg.norm != "none" else 0) + (2 * (BT * d + BT * h) if cfg.qk_norm else 0)
    if "attention" in fused:
        scores_name, scores = "attention: flash output + log-sum-exp", L * (BT * d + BT * h)
    else:
        scores_name, scores = "attention: probabilities (B h T T) + output", L * (BT * h * T + BT * d)
    if "cross_entropy" in fused:
        head_name, head = "fused LM head + loss: saved gradients (B T d + V d)", BT * d + V * d
    else:
        head_name, head = "loss: exp(logits) (B T V) + row statistics", BT * V + 4 * BT
    return {
        "block norms (inputs + inverse RMS)": L * block_norms,
        "attention inputs (x and per-head q, k, v)": L * 4 * BT * d,
        scores_name: scores,
        "attention output (output projection input)": L * BT * d,
        "ffn (input + two projections + gated product)": L * (BT * d + 3 * BT * f),
        "ln_final + lm_head input": ((BT * d + BT) if cfg.norm == "pre" else 0) + BT * d,
        head_name: head,
    }


def handout_activation_elements(cfg: ModelConfig, seq_len: int | None = None, batch_size: int = 1) -> dict[str, int]:
    """Activation elements as the CS336 handout's AdamW question counts them: one B x T x width
    tensor per listed op (in each block: two RMSNorms, the Q, K and V projections, Q^T K and its
    softmax (B x h x T x T each), the weighted sum of values, the output projection, W1, SiLU and
    W2; then the final RMSNorm, the output embedding and the cross-entropy over the logits).
    It is what the question asks for; ``activation_elements`` is what this code's backward keeps."""
    T = seq_len or cfg.context_length
    d, L, f, V, h = cfg.d_model, cfg.num_layers, cfg.d_ff, cfg.vocab_size, cfg.num_heads
    BT = batch_size * T
    return {
        "block RMSNorms (2 x B T d)": L * 2 * BT * d,
        "Q, K, V projections (3 x B T d)": L * 3 * BT * d,
        "Q^T K and softmax (2 x B h T T)": L * 2 * BT * h * T,
        "weighted sum of values and output projection (2 x B T d)": L * 2 * BT * d,
        "W1 and SiLU (2 x B T d_ff), W2 (B T d)": L * (2 * BT * f + BT * d),
        "final RMSNorm (B T d)": BT * d,
        "output embedding and cross-entropy (2 x B T V)": 2 * BT * V,
    }


def training_memory(cfg: ModelConfig, batch_size: int = 1, seq_len: int | None = None,
                    param_bytes: int = 4, activation_bytes: int = 4) -> MemoryEstimate:
    """Training memory with AdamW: parameters, gradients (same dtype), two moments (float32),
    activations (``activation_bytes`` per element: 4 float32, 2 bf16 autocast)."""
    n = count_parameters(cfg)
    acts = activation_elements(cfg, seq_len, batch_size)
    return MemoryEstimate(
        parameters=n * param_bytes,
        gradients=n * param_bytes,
        optimizer_state=2 * n * 4,
        activations={k: v * activation_bytes for k, v in acts.items()},
    )


def max_batch_size(cfg: ModelConfig, memory_bytes: int, seq_len: int | None = None,
                   param_bytes: int = 4, activation_bytes: int = 4) -> int:
    """Largest batch whose estimated training memory fits in ``memory_bytes`` (0: not even the
    parameters, gradients and optimizer state fit). Activations are affine in the batch."""
    one, two = (training_memory(cfg, b, seq_len, param_bytes, activation_bytes).total for b in (1, 2))
    per_sequence = two - one
    return max(0, (memory_bytes - (one - per_sequence)) // per_sequence)
