"""Stage 6 of the pipeline: the final evaluation on every token of the validation set."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from tritonlm.model import TransformerLM
from tritonlm.train.config import TrainConfig
from tritonlm.train.step import autocast_context


@torch.no_grad()
def evaluate_full(model: TransformerLM, tokens: np.ndarray, train: TrainConfig, batch_size: int,
                  device: torch.device) -> dict:
    """Mean next-token loss over EVERY token of the validation set: the stream is cut into
    consecutive windows of ``context_length`` inputs (the last one shorter, padded with an
    ignored target), so each token but the first is predicted exactly once."""
    T = train.model.context_length
    n_targets = len(tokens) - 1
    windows = -(-n_targets // T)
    autocast = autocast_context(train, device)
    total, count = 0.0, 0
    for first in tqdm(range(0, windows, batch_size), desc="final evaluation", unit="batch", leave=False):
        rows = range(first, min(first + batch_size, windows))
        ids = torch.zeros((len(rows), T), dtype=torch.long)
        targets = torch.full((len(rows), T), -100, dtype=torch.long)
        for r, w in enumerate(rows):
            span = np.asarray(tokens[w * T: min((w + 1) * T + 1, len(tokens))], dtype=np.int64)
            ids[r, : len(span) - 1] = torch.from_numpy(span[:-1])
            targets[r, : len(span) - 1] = torch.from_numpy(span[1:])
        valid = int((targets != -100).sum())
        with autocast():
            loss = model.loss(ids.to(device), targets.to(device))
        total += float(loss) * valid
        count += valid
    return {"val_loss": total / count, "val_tokens": count, "windows": windows}
