"""The leaderboard job as one pipeline, read top to bottom in ``run_leaderboard``:

    data -> tokenizer -> token files -> train -> evaluate -> samples -> report

Each stage is a module of this package (``data``, the training loop of ``train.loop``,
``evaluate``, ``samples``, ``report``); the data stages are cached, so a second run with the same
data starts training at once.
"""

from __future__ import annotations

import time

from tritonlm.corpora.stories import unigram_entropy
from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.train.config import TrainConfig
from tritonlm.train.data import padded_vocab_size
from tritonlm.train.loop import run_training
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.presentation import run_length
from tritonlm.train.run_folder import RunFolder, load_model
from tritonlm.util.cli import Interrupted, apply_overrides

from .data import PreparedData, prepare_data
from .evaluate import evaluate_full
from .options import Job
from .progress import build_progress, describe_progress, write_progress
from .report import build_report, write_run_report
from .samples import draw_samples, run_tokenizer, sample_prompts


class TrainingInterrupted(RuntimeError, Interrupted):
    """Training stopped on a signal; its checkpoint is kept and the job can be resumed."""


def run_leaderboard(job: Job) -> dict:
    """Prepare the data, train within the budget, evaluate on the whole validation set, sample,
    and write report.json / report.md / val_loss_vs_minutes.png / samples.md into the run folder."""
    start = time.perf_counter()
    # 1-3. text -> tokenizer -> token files (cached), and the training config pointed at them
    data = prepare_data(job.train_data, job.val_data, job.options, job.tokenizer)
    train = training_config(job, data)
    prepare_seconds = time.perf_counter() - start
    # 4. training within the budget (checkpointed; a signal stops it resumably)
    print(f"training {job.preset} preset for {run_length(train.budget_seconds, train.max_iters)} -> {job.out_dir}")
    summary = run_training(train)
    folder = RunFolder(job.out_dir)
    if summary.get("status") == "interrupted":
        metrics = read_metrics(folder.metrics)
        progress = build_progress(job.preset, train, summary, data.val_entropy_floor, metrics)
        write_progress(folder.root, progress, metrics)
        raise TrainingInterrupted(f"training was interrupted ({describe_progress(progress)}; {folder.progress}); "
                                  f"a checkpoint is in {job.out_dir}: continue with the same command plus "
                                  f"--resume --out {job.out_dir}")
    # 5. the final model on every validation token
    eval_start = time.perf_counter()
    model = load_model(job.out_dir, train.device, train.model.kernels)
    device = next(model.parameters()).device
    val_tokens, _ = open_tokens(data.val_tokens)
    final = evaluate_full(model, val_tokens, train, job.options.eval_batch_size, device)
    entropy = unigram_entropy(val_tokens)
    eval_seconds = time.perf_counter() - eval_start
    # 6. samples, with the tokenizer copied into the run folder
    samples = draw_samples(model, run_tokenizer(data, job.out_dir), sample_prompts(job), job.options, device)
    # 7. the report
    timings = {"prepare_data": prepare_seconds, "evaluate": eval_seconds, "total": time.perf_counter() - start}
    report = build_report(job, train, data, summary, final, entropy, samples, timings)
    write_run_report(job.out_dir, report, read_metrics(folder.metrics))
    folder.progress.unlink(missing_ok=True)  # the report supersedes what an earlier stop wrote
    folder.progress_plot.unlink(missing_ok=True)
    return report


def training_config(job: Job, data: PreparedData) -> TrainConfig:
    """The job's training config pointed at the token files, with a vocabulary that holds them
    (padded to a multiple of 64, unless ``--model.vocab_size`` asks for more)."""
    vocab = max(padded_vocab_size(data.vocab_size), job.train.model.vocab_size if job.flags.get("--model.vocab_size") else 0)
    return apply_overrides(job.train, {"train_data": str(data.train_tokens), "val_data": str(data.val_tokens),
                                       "out_dir": str(job.out_dir), "model.vocab_size": vocab})
