"""A run folder: every file a training run (and the leaderboard job) writes, each named once here,
and loading a finished run back into a model and its tokenizer.

::

    RUN/
      config.json                     the TrainConfig and run metadata, written at the start
      config.toml                     the same settings as a file train.train --config repeats the run from
      metrics.jsonl                   one record per logged step and evaluation (train.metrics_log)
      checkpoint.pt                   model, optimizer, RNG and data-sampler state (train.checkpoint)
      summary.json                    the loop's summary, written at the end
      loss_vs_steps.png, loss_vs_time.png
      tokenizer/                      the tokenizer that made the training data (from the token file's header,
                                      or --tokenizer), so generate and export find it
      report.json, report.md, samples.md, val_loss_vs_minutes.png     the leaderboard's report
      progress.json, val_loss_vs_tokens.png     how far an interrupted leaderboard run got (removed once it finishes)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.tokenizer import END_OF_TEXT, ByteTokenizer


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def config_toml(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def loss_vs_steps_plot(self) -> Path:
        return self.root / "loss_vs_steps.png"

    @property
    def loss_vs_time_plot(self) -> Path:
        return self.root / "loss_vs_time.png"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def report_markdown(self) -> Path:
        return self.root / "report.md"

    @property
    def samples(self) -> Path:
        return self.root / "samples.md"

    @property
    def val_curve_plot(self) -> Path:
        return self.root / "val_loss_vs_minutes.png"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def progress_plot(self) -> Path:
        return self.root / "val_loss_vs_tokens.png"

    def saved_config(self) -> dict | None:
        """The training configuration recorded in ``config.json`` (a ``TrainConfig`` dict), or
        None when the run has not started; a clear error when the file cannot be read as one."""
        if not self.config.exists():
            return None
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))["config"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{self.config} is not a readable run config ({type(e).__name__}: {e}); "
                             "it is written when training starts: restore it, or start the run in a new folder") from e


def checkpoint_path(run_or_checkpoint: str | os.PathLike) -> Path:
    """The checkpoint file of a run folder, or the file itself; a clear error when there is none."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        path = RunFolder(path).checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: give a run folder (with checkpoint.pt) or a checkpoint file")
    return path


def load_model(run_or_checkpoint: str | os.PathLike, device: str = "cpu", kernels_spec: str = "auto") -> TransformerLM:
    """The model saved by ``train.save_checkpoint`` (its config is in the checkpoint), in eval
    mode on ``device``, with the kernels chosen for this machine rather than the training one."""
    from tritonlm.train.checkpoint import read_checkpoint
    from tritonlm.train.data import resolve_device

    device = resolve_device(device)  # a clear error for an unavailable device, before the read
    path = checkpoint_path(run_or_checkpoint)
    return model_from_checkpoint(read_checkpoint(path), path, device, kernels_spec)


def model_from_checkpoint(payload: dict, path: str | os.PathLike, device: str = "cpu",
                          kernels_spec: str = "auto") -> TransformerLM:
    """The model of a checkpoint already read (``read_checkpoint``; ``path`` names it in errors),
    in eval mode on ``device``: for callers that need more of the checkpoint than its model."""
    from tritonlm.train.data import resolve_device

    device = resolve_device(device)
    saved = payload.get("model_config")
    if saved is None:
        raise ValueError(f"{path} records no model config, so the model cannot be rebuilt from it")
    cfg = ModelConfig.from_dict({**saved, "kernels": kernels_spec})
    model = TransformerLM.from_config(cfg, device=device)
    model.load_state_dict(payload["model"])
    return model.eval()


def find_tokenizer_dir(run_or_checkpoint: str | os.PathLike) -> Path | None:
    """A tokenizer folder for a run: RUN/tokenizer, the run folder itself, or the folder the
    leaderboard recorded in report.json; None when there is none."""
    run = Path(run_or_checkpoint)
    folder = RunFolder(run if run.is_dir() else run.parent)
    candidates = [folder.tokenizer, folder.root]
    if folder.report.is_file():
        recorded = json.loads(folder.report.read_text()).get("data", {}).get("tokenizer_dir")
        if recorded:
            candidates.append(Path(recorded))
    return next((c for c in candidates if (c / "vocab.json").is_file()), None)


def load_tokenizer(spec: str | os.PathLike | None, run_or_checkpoint: str | os.PathLike | None = None):
    """``spec`` is a tokenizer folder (vocab.json, merges.txt, special_tokens.json), ``"bytes"``,
    or None to look beside the run. A folder without special_tokens.json gets <|endoftext|>."""
    if spec == "bytes":
        return ByteTokenizer()
    folder = Path(spec) if spec else (find_tokenizer_dir(run_or_checkpoint) if run_or_checkpoint else None)
    if folder is None:
        raise FileNotFoundError(
            f"no tokenizer found for {run_or_checkpoint}; pass --tokenizer DIR (a folder with vocab.json and "
            "merges.txt, e.g. the one python -m tokenizer.train wrote) or --tokenizer bytes for byte-level models"
        )
    from tritonlm.tokenizer import Tokenizer
    from tritonlm.tokenizer.vocab_files import load_special_tokens

    return Tokenizer.from_dir(folder, load_special_tokens(folder) or [END_OF_TEXT])


def load_run(run_or_checkpoint: str | os.PathLike, device: str = "cpu", kernels_spec: str = "auto",
             tokenizer: str | os.PathLike | None = None):
    """``(model, tokenizer)`` of a finished run: the checkpoint's model (see ``load_model``) and
    the tokenizer given, or found beside the run (see ``load_tokenizer``)."""
    return load_model(run_or_checkpoint, device, kernels_spec), load_tokenizer(tokenizer, run_or_checkpoint)
