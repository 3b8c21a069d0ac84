"""The Transformer block and the language model.

State-dict keys follow docs/architecture.md: ``token_embeddings.weight``, ``layers.{i}.ln1.weight``,
``layers.{i}.attn.{q,k,v,output}_proj.weight``, ``layers.{i}.ln2.weight``,
``layers.{i}.ffn.w{1,2,3}.weight``, ``ln_final.weight``, ``lm_head.weight``.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import nn

from tritonlm import kernels
from .attention import KVCache, LayerKVCache, MultiHeadSelfAttention
from .config import KernelPlan, ModelConfig
from .layers import FFN_CLASSES, Embedding, KernelModule, Linear, RMSNorm


def _block_norm(norm: str, d_model: int, eps: float, kernels, device, dtype) -> RMSNorm | None:
    """A block's RMSNorm, or None in the no-norm ablation (so the state dict has no such key)."""
    return None if norm == "none" else RMSNorm(d_model, eps, device=device, dtype=dtype, kernels=kernels)


class TransformerBlock(nn.Module):
    """One layer. ``norm="pre"``: ``h = x + attn(ln1(x)); y = h + ffn(ln2(h))``;
    ``"post"``: ``h = ln1(x + attn(x)); y = ln2(h + ffn(h))``; ``"none"``: no norms."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float | None,
                 norm: str = "pre", positions: str = "rope", ffn: str = "swiglu", qk_norm: bool = False,
                 eps: float = 1e-5, kernels: str | KernelPlan = "auto", device=None, dtype=None):
        super().__init__()
        self.norm = norm
        self.ln1 = _block_norm(norm, d_model, eps, kernels, device, dtype)
        self.attn = MultiHeadSelfAttention(
            d_model, num_heads, max_seq_len, theta if positions == "rope" else None,
            qk_norm=qk_norm, eps=eps, kernels=kernels, device=device, dtype=dtype,
        )
        self.ln2 = _block_norm(norm, d_model, eps, kernels, device, dtype)
        self.ffn = FFN_CLASSES[ffn](d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None,
                kv_cache: LayerKVCache | None = None, start_pos: int = 0) -> torch.Tensor:
        def attn(h):
            return self.attn(h, token_positions, kv_cache, start_pos)

        if self.norm == "pre":
            h = x + attn(self.ln1(x))
            return h + self.ffn(self.ln2(h))
        if self.norm == "post":
            h = self.ln1(x + attn(x))
            return self.ln2(h + self.ffn(h))
        h = x + attn(x)
        return h + self.ffn(h)


class TransformerLM(KernelModule):
    """Decoder-only LM: embeddings, ``num_layers`` blocks, ``ln_final`` (pre-norm only; in the
    post-norm ablation the last block already ends with a norm), ``lm_head``.

    Options (keyword arguments, the other ``ModelConfig`` fields): ``norm``, ``positions``,
    ``ffn``, ``tie_embeddings`` (lm_head and token_embeddings share one matrix, initialised like
    lm_head), ``qk_norm``, ``logit_softcap``, ``zero_init_output``, ``kernels``, ``norm_eps``; plus
    ``device``/``dtype``.
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int | None, rope_theta: float, device=None, dtype=None, **options):
        super().__init__()
        cfg = ModelConfig(vocab_size=vocab_size, context_length=context_length, d_model=d_model,
                          num_layers=num_layers, num_heads=num_heads, d_ff=d_ff, rope_theta=rope_theta, **options)
        self.config = cfg
        self.token_embeddings = Embedding(cfg.vocab_size, cfg.d_model, device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            TransformerBlock(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.context_length, cfg.rope_theta,
                             norm=cfg.norm, positions=cfg.positions, ffn=cfg.ffn, qk_norm=cfg.qk_norm,
                             eps=cfg.norm_eps, kernels=cfg.kernels, device=device, dtype=dtype)
            for _ in range(cfg.num_layers)
        )
        self.ln_final = (RMSNorm(cfg.d_model, cfg.norm_eps, device=device, dtype=dtype, kernels=cfg.kernels)
                         if cfg.norm == "pre" else None)
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, device=device, dtype=dtype)
        if cfg.tie_embeddings:
            self.token_embeddings.weight = self.lm_head.weight
        if cfg.zero_init_output:
            self._zero_output_projections()
        self._init_kernels(cfg.kernels, device)

    @torch.no_grad()
    def _zero_output_projections(self) -> None:
        """Zero the matrices that write into the residual stream (attention ``output_proj``, FFN
        ``w2``): every block starts as the identity, and learns what to add."""
        for layer in self.layers:
            layer.attn.output_proj.weight.zero_()
            layer.ffn.w2.weight.zero_()

    @classmethod
    def from_config(cls, cfg: ModelConfig, device=None, dtype=None) -> "TransformerLM":
        values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
        return cls(**values, device=device, dtype=dtype)

    # ----------------------------------------------------------------------------------- forward
    def hidden_states(self, ids: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Final hidden states (batch, seq, d_model), after ``ln_final``. With ``kv_cache``, ``ids``
        continue the cached sequence (positions start at ``kv_cache.length``) and the cache advances."""
        start = kv_cache.length if kv_cache is not None else 0
        seq = ids.shape[-1]
        if start + seq > self.config.context_length:
            raise ValueError(
                f"sequence of {start + seq} positions exceeds context_length={self.config.context_length}; "
                "crop the input to the last context_length tokens"
            )
        positions = torch.arange(start, start + seq, device=ids.device)
        x = self.token_embeddings(ids)  # (batch, seq, d_model)
        for i, layer in enumerate(self.layers):
            layer_cache = kv_cache.layers[i] if kv_cache is not None else None
            x = layer(x, positions, layer_cache, start)
        if kv_cache is not None:
            kv_cache.length = start + seq
        return self.ln_final(x) if self.ln_final is not None else x

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)  # (..., vocab)
        cap = self.config.logit_softcap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def forward(self, ids: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Unnormalised next-token logits (batch, seq, vocab) for token ids (batch, seq)."""
        return self.logits_from_hidden(self.hidden_states(ids, kv_cache))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, z_loss: float = 0.0,
             ignore_index: int = -100) -> torch.Tensor:
        """Mean next-token cross-entropy (+ ``z_loss * mean(logsumexp(logits)^2)``).

        When the cross_entropy backend is Triton, the LM head is fused with the loss
        (``kernels.linear_cross_entropy``: no (tokens, vocab) logits tensor in memory), with
        logit soft-capping and z-loss fused too; otherwise the reference loss on the logits.
        """
        hidden = self.hidden_states(ids).flatten(0, -2)  # (tokens, d_model)
        targets = targets.reshape(-1)  # (tokens,)
        backend = self.kernel_plan.cross_entropy
        options = dict(softcap=self.config.logit_softcap, z_loss=z_loss)
        if backend == "triton":
            return kernels.linear_cross_entropy(hidden, self.lm_head.weight, targets, ignore_index,
                                                backend=backend, **options)
        logits = self.lm_head(hidden)  # (tokens, vocab), soft-capped inside the loss
        return kernels.cross_entropy(logits, targets, ignore_index, backend=backend, **options)

    # ---------------------------------------------------------------------------------- decoding
    def new_kv_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        """An empty KV cache for up to ``max_len`` (default context_length) positions, on the
        model's device and in its dtype."""
        weight = self.lm_head.weight
        return KVCache(self.config.num_layers, batch_size, self.config.num_heads,
                       max_len or self.config.context_length, self.config.head_dim, weight.device, weight.dtype)

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())
