"""Training stack: optimizer, schedule, data, checkpoints, loop, generation, leaderboard.

Light imports only: the loop (``train.loop.run_training``), the CLI (``python -m train.train``)
and the leaderboard (``train.leaderboard``) are imported from their modules.
"""

if __name__ != "tritonlm.train":  # the folder imported as `train` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.train, or another installed distribution named train
else:
    from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
    from .config import TrainConfig
    from .data import TokenData, TokenIdError, get_batch, load_tokens
    from .functional import clip_grad_norm, cross_entropy
    from .optim import AdamW, parameter_groups
    from .schedule import lr_at_progress, lr_cosine_schedule, lr_wsd_schedule

    __all__ = [
        "AdamW",
        "CheckpointError",
        "TokenData",
        "TokenIdError",
        "TrainConfig",
        "clip_grad_norm",
        "cross_entropy",
        "get_batch",
        "load_checkpoint",
        "load_tokens",
        "lr_at_progress",
        "lr_cosine_schedule",
        "lr_wsd_schedule",
        "parameter_groups",
        "read_checkpoint",
        "save_checkpoint",
    ]
