"""What a run is made of, built from its ``TrainConfig``: its token files, model and optimizer.

``build_optimizer`` is the one place that turns the config into an optimizer, so another
optimizer is added here (and nowhere else in the loop).
"""

from __future__ import annotations

import torch

from tritonlm.model import TransformerLM

from .config import TrainConfig
from .data import TokenData, load_tokens
from .muon import Muon, muon_parameter_groups
from .optim import AdamW, parameter_groups


def load_datasets(cfg: TrainConfig) -> tuple[TokenData, TokenData | None]:
    """Memory-map the token files and check their vocabulary fits the model."""
    if not cfg.train_data:
        raise ValueError("train_data is not set: pass --train_data=PATH to a token file (python -m tokenizer.encode)")
    datasets = [load_tokens(cfg.train_data), load_tokens(cfg.val_data) if cfg.val_data else None]
    for data in (d for d in datasets if d is not None):  # not filter(None, ...): an empty file is falsy
        if data.vocab_size > cfg.model.vocab_size:
            raise ValueError(
                f"{data.path} was written for a vocabulary of {data.vocab_size} but "
                f"model.vocab_size is {cfg.model.vocab_size}; set --model.vocab_size={data.vocab_size}"
            )
        if len(data) <= cfg.model.context_length:
            raise ValueError(f"{data.path} has {len(data)} tokens, too few for context_length "
                             f"{cfg.model.context_length}: it needs at least {cfg.model.context_length + 1}; "
                             "encode more text or lower --model.context_length")
    return datasets[0], datasets[1]


def build_model(cfg: TrainConfig, device: torch.device) -> TransformerLM:
    """The model of ``cfg.model``, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return TransformerLM.from_config(cfg.model, device=device)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of the run: AdamW, decaying the parameter groups ``parameter_groups`` picks;
    or Muon for the hidden matrices (at ``muon_lr``) with AdamW for the rest in the same groups."""
    if cfg.optimizer == "muon":
        groups = muon_parameter_groups(model, cfg.weight_decay, cfg.muon_lr_scale, cfg.decay_norms_and_embeddings)
        ns_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[cfg.muon_ns_dtype]
        return Muon(groups, lr=cfg.max_lr, momentum=cfg.muon_momentum, ns_steps=cfg.muon_ns_steps,
                    ns_dtype=ns_dtype, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_norms_and_embeddings)
    return AdamW(groups, lr=cfg.max_lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def build_model_and_optimizer(cfg: TrainConfig, device: torch.device) -> tuple[TransformerLM, torch.optim.Optimizer]:
    """The model and its optimizer, as a run starts them (before any resume)."""
    model = build_model(cfg, device)
    return model, build_optimizer(model, cfg)
