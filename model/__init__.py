"""Transformer language model built from first principles.

Modules and functions follow docs/architecture.md (names, shapes, init and state-dict keys); the fused ops
(RMSNorm, attention, cross-entropy) go through ``kernels`` with the backend chosen once, at
construction, from ``ModelConfig.kernels``.
"""

if __name__ != "tritonlm.model":  # the folder imported as `model` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.model, or another installed distribution named model
else:
    from .attention import KVCache, LayerKVCache, MultiHeadSelfAttention
    from .config import FFN_CHOICES, KERNEL_OPS, NORM_CHOICES, POSITION_CHOICES, KernelPlan, ModelConfig, default_d_ff
    from .functional import scaled_dot_product_attention, silu, softmax
    from .layers import Embedding, Linear, RMSNorm, RotaryPositionalEmbedding, SiLUFFN, SwiGLU
    from .presets import PRESETS, preset
    from .transformer import TransformerBlock, TransformerLM

    __all__ = [
        "FFN_CHOICES",
        "KERNEL_OPS",
        "KVCache",
        "KernelPlan",
        "LayerKVCache",
        "Linear",
        "Embedding",
        "ModelConfig",
        "MultiHeadSelfAttention",
        "NORM_CHOICES",
        "POSITION_CHOICES",
        "PRESETS",
        "RMSNorm",
        "RotaryPositionalEmbedding",
        "SiLUFFN",
        "SwiGLU",
        "TransformerBlock",
        "TransformerLM",
        "default_d_ff",
        "preset",
        "scaled_dot_product_attention",
        "silu",
        "softmax",
    ]
