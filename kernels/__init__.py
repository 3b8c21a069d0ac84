"""Fused ops, each with a Triton implementation and a from-scratch PyTorch reference.

Every public function takes ``backend="torch" | "triton" | "auto"`` (auto: Triton on CUDA,
reference elsewhere) and is differentiable. The Triton launchers are registered as PyTorch
operators (``torch.ops.tritonlm.*``, see ``_ops``), so ``torch.compile(fullgraph=True)`` traces
models that use them without graph breaks.
"""

if __name__ != "tritonlm.kernels":  # the folder imported as `kernels` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.kernels, or another installed distribution named kernels
else:
    from ._backend import BACKENDS, resolve_backend, triton_unavailable_reason, validate_backend
    from .attention import attention, attention_reference
    from .cross_entropy import cross_entropy, cross_entropy_reference
    from .linear_cross_entropy import linear_cross_entropy, linear_cross_entropy_reference
    from .rmsnorm import rmsnorm, rmsnorm_reference
    from .softmax import softmax, softmax_reference

    __all__ = [
        "BACKENDS",
        "attention",
        "attention_reference",
        "cross_entropy",
        "cross_entropy_reference",
        "linear_cross_entropy",
        "linear_cross_entropy_reference",
        "resolve_backend",
        "rmsnorm",
        "rmsnorm_reference",
        "softmax",
        "softmax_reference",
        "triton_unavailable_reason",
        "validate_backend",
    ]
