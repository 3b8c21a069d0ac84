"""``TrainConfig``: everything a training run needs, typed and validated at construction.

The model is described by a nested ``model.ModelConfig``; every other field is a training
choice. Command-line flags are generated from these fields (``util.cli``), so a field added
here is a flag at once: ``--batch_size=64 --model.d_model=256``.

Schedule semantics: ``warmup_fraction`` and ``decay_fraction`` are fractions of the run, and
the run's length is ``budget_seconds`` of training time when set (the learning rate follows
elapsed / budget), else ``max_iters`` steps. The learning rate reaches ``min_lr`` at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tritonlm.model.config import ModelConfig

from .schedule import SCHEDULES

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adamw", "muon")
DTYPES = ("auto", "bf16", "fp32")
LOGGERS = ("none", "tensorboard", "wandb")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    # data and output
    train_data: str = ""  # token file (python -m tokenizer.encode)
    val_data: str | None = None  # token file; None: no validation
    out_dir: str = "runs/default"
    tokenizer: str | None = None  # tokenizer folder the run records; None: the one train_data's header names
    # batch: each step sees batch_size * grad_accum_steps * world_size sequences
    batch_size: int = 32  # per process and micro-step
    grad_accum_steps: int = 1
    # length: a wall-clock budget of training time, or a number of optimizer steps
    max_iters: int | None = 1000
    budget_seconds: float | None = None
    # optimizer and schedule
    optimizer: str = "adamw"  # adamw | muon (Muon for the hidden matrices, AdamW for the rest)
    muon_lr: float | None = None  # Muon's peak learning rate (same schedule); None: max_lr
    muon_momentum: float = 0.95
    muon_ns_steps: int = 5  # Newton–Schulz iterations per Muon step
    muon_ns_dtype: str = "bf16"  # bf16 | fp32: the precision of the Newton–Schulz matmuls
    schedule: str = "cosine"  # cosine | wsd
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_fraction: float = 0.02
    decay_fraction: float = 0.2  # wsd only: the final share of the run spent decaying
    weight_decay: float = 0.1
    decay_norms_and_embeddings: bool = False  # False: norm gains and embeddings get no decay
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables clipping
    z_loss: float = 0.0  # weight of the log(Z)^2 auxiliary loss
    # evaluation, logging, checkpoints (intervals in optimizer steps; 0 = only at the end)
    eval_interval: int = 100
    eval_iters: int = 20
    log_interval: int = 10
    checkpoint_interval: int = 500
    # execution
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool | None = None  # torch.compile the loss; None: on CUDA only (true: on the CPU too)
    seed: int = 0
    resume: bool = False  # continue the run in out_dir from its checkpoint
    overwrite: bool = False  # allow starting afresh in an out_dir that holds a run
    progress: bool = True  # tqdm progress bar
    logger: str = "none"  # none | tensorboard | wandb
    wandb_project: str = "tritonlm"
    wandb_mode: str = "offline"  # offline works without a network; "online" to sync

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        self.betas = tuple(self.betas)
        self._check_positive()
        self._check_choices()
        if self.max_iters is None and self.budget_seconds is None:
            raise ValueError("set max_iters or budget_seconds (or both: the run stops at whichever comes first)")
        if not 0 <= self.min_lr <= self.max_lr:
            raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={self.min_lr} max_lr={self.max_lr}")
        if not (0 <= self.warmup_fraction <= 1 and 0 <= self.decay_fraction <= 1):
            raise ValueError("warmup_fraction and decay_fraction are fractions of the run, in [0, 1]")
        if self.schedule == "wsd" and self.warmup_fraction + self.decay_fraction > 1:
            raise ValueError("wsd: warmup_fraction + decay_fraction must not exceed 1")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        self._check_muon()

    def _check_muon(self) -> None:
        if self.muon_lr is not None and self.muon_lr < 0:
            raise ValueError(f"muon_lr must be >= 0 (or none: max_lr), got {self.muon_lr}")
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"muon_momentum must be in [0, 1), got {self.muon_momentum}")
        if self.muon_ns_dtype not in ("bf16", "fp32"):
            raise ValueError(f"muon_ns_dtype={self.muon_ns_dtype!r} is not one of bf16, fp32")
        if self.muon_ns_steps < 1:
            raise ValueError(f"muon_ns_steps must be at least 1, got {self.muon_ns_steps}")

    def _check_positive(self) -> None:
        for name in ("batch_size", "grad_accum_steps", "eval_iters"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("eval_interval", "log_interval", "checkpoint_interval", "weight_decay", "grad_clip", "z_loss", "eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_iters is not None and self.max_iters <= 0:
            raise ValueError(f"max_iters must be positive (or None with budget_seconds), got {self.max_iters}")
        if self.budget_seconds is not None and self.budget_seconds <= 0:
            raise ValueError(f"budget_seconds must be positive (or None), got {self.budget_seconds}")

    def _check_choices(self) -> None:
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES), ("dtype", DTYPES),
                              ("logger", LOGGERS), ("wandb_mode", ("offline", "online", "disabled"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")

    @property
    def muon_lr_scale(self) -> float:
        """Muon's learning rate as a multiple of the scheduled (AdamW) one."""
        if self.muon_lr is None or self.max_lr == 0:
            return 1.0
        return self.muon_lr / self.max_lr

    def compiles_on(self, device_type: str) -> bool:
        """Whether the loss is ``torch.compile``d on a device of this type."""
        return self.compile if self.compile is not None else device_type == "cuda"

    @property
    def tokens_per_step_per_rank(self) -> int:
        return self.batch_size * self.grad_accum_steps * self.model.context_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}")
        return cls(**data)
