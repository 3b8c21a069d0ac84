"""The leaderboard's report (stage 7 of the pipeline): the plan behind a preset (parameters,
FLOPs per token, tokens per step), and report.json / report.md / samples.md /
val_loss_vs_minutes.png in the run folder."""

from __future__ import annotations

import os
from typing import Sequence

from tritonlm.train.presentation import (flat_items, format_duration, markdown_table, model_flops_utilization, peak_flops,
                                         plot_val_loss_vs_minutes, run_length)
from tritonlm.train.run_folder import RunFolder
from tritonlm.util.atomic import write_json_atomic, write_text_atomic

IMPROVEMENT_FLAGS = {
    "optimizer": "optimizer (adamw, or muon = Newton–Schulz-orthogonalised momentum for the hidden matrices)",
    "muon_lr": "Muon's peak learning rate (none = max_lr)",
    "model.ffn": "FFN (swiglu, silu, or relu2 = squared ReLU)",
    "model.zero_init_output": "zero-initialised output projections (attention output and FFN w2)",
    "model.tie_embeddings": "weight tying (lm_head shares the embedding matrix)",
    "model.qk_norm": "QK-norm (RMSNorm on queries and keys per head)",
    "z_loss": "z-loss weight (penalises log(Z)^2 of the softmax normaliser)",
    "model.logit_softcap": "logit soft-capping (cap * tanh(logits / cap); 0 = off)",
    "schedule": "learning-rate schedule (cosine, or wsd = warmup-stable-decay)",
    "model.kernels": "kernel backends (Triton or PyTorch reference, per op)",
    "dtype": "precision (bf16 autocast, on CUDA or the CPU)",
    "compile": "torch.compile of the loss (none = on CUDA only)",
}


def compute_plan(train_config) -> dict:
    """Accounting figures of a training config: parameters, FLOPs per token, tokens per step."""
    from tritonlm.model.accounting import count_parameters, parameter_counts, training_flops

    cfg = train_config.model
    params = count_parameters(cfg)
    embedding = parameter_counts(cfg)["token_embeddings"]
    lm_head = parameter_counts(cfg)["lm_head"]
    return {
        "parameters": params,
        "non_embedding_parameters": params - embedding - lm_head,
        "train_flops_per_token": training_flops(cfg) / cfg.context_length,
        "tokens_per_step": train_config.tokens_per_step_per_rank,
    }


def describe_plan(job, assumed_mfu: float = 0.4, device_name: str = "H100 SXM") -> str:
    """What ``--dry-run`` prints: the resolved options and the accounting behind the sizing."""
    plan = compute_plan(job.train)
    budget, steps = job.train.budget_seconds, job.train.max_iters
    lines = [f"preset {job.preset}; {run_length(budget, steps)}; run folder {job.out_dir}", ""]
    lines += [f"  {k} = {v!r}" for k, v in flat_items(_as_dict(job.options))]
    lines += [f"  {k} = {v!r}" for k, v in flat_items(job.train.to_dict())]
    lines += ["", f"parameters {plan['parameters']:,} ({plan['non_embedding_parameters']:,} non-embedding)",
              f"training FLOPs per token {plan['train_flops_per_token']:.3g} (forward + backward, model.accounting)",
              f"tokens per optimizer step {plan['tokens_per_step']:,}"]
    peak = peak_flops(device_name)
    if steps and not budget:
        tokens = steps * plan["tokens_per_step"]
        lines += [f"{steps:,} steps = {tokens:.3g} tokens = {tokens / plan['parameters']:.1f} tokens per parameter "
                  "(compute-optimal is about 20)"]
    elif peak:
        tokens_per_s = assumed_mfu * peak / plan["train_flops_per_token"]
        tokens = tokens_per_s * budget
        lines += [f"at {assumed_mfu:.0%} MFU on an {device_name} ({peak / 1e12:.0f} TFLOP/s bf16 dense): "
                  f"{tokens_per_s:,.0f} tokens/s, {tokens:.3g} tokens in the budget = "
                  f"{tokens / plan['parameters']:.1f} tokens per parameter "
                  f"(compute-optimal is about 20), {tokens / plan['tokens_per_step']:,.0f} steps"]
    return "\n".join(lines)


def _as_dict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)


def build_report(job, train, data, summary: dict, final: dict, entropy: float, samples: list[dict],
                 timings: dict) -> dict:
    """The report of a leaderboard run as a JSON-ready dict (report.json)."""
    from tritonlm.util.runinfo import run_metadata

    plan = compute_plan(train)
    metadata = run_metadata()
    tokens_per_s = summary.get("tokens_per_s") or 0.0
    on_gpu = str(summary.get("device", "")).startswith("cuda")
    flat = dict(flat_items(train.to_dict()))
    return {
        "preset": job.preset,
        "status": summary.get("status"),
        "final_val_loss": final["val_loss"],
        "val_unigram_entropy": entropy,
        "val_loss_below_unigram_entropy": entropy - final["val_loss"],
        # the loss of the best possible model (the generated corpus's entropy rate), when known
        "val_entropy_floor": data.val_entropy_floor,
        "val_loss_above_floor": (final["val_loss"] - data.val_entropy_floor
                                 if data.val_entropy_floor is not None else None),
        "val_tokens": final["val_tokens"],
        "last_periodic_val_loss": summary.get("final_val_loss"),
        "final_train_loss": summary.get("final_train_loss"),
        "tokens_seen": summary.get("tokens"),
        "steps": summary.get("steps"),
        "budget_seconds": train.budget_seconds,
        "max_iters": train.max_iters,
        "training_seconds": summary.get("train_seconds"),
        "tokens_per_second": tokens_per_s,
        "mfu": model_flops_utilization(plan["train_flops_per_token"], tokens_per_s, metadata["device"]) if on_gpu else None,
        **plan,
        "timings_seconds": {"training": summary.get("train_seconds"), "periodic_eval_and_checkpoints": summary.get("eval_seconds"), **timings},
        "improvements": {key: flat.get(key) for key in IMPROVEMENT_FLAGS},
        "data": data.to_dict(),
        "options": _as_dict(job.options),
        "config": train.to_dict(),
        "flags": job.flags,
        "samples": samples,
        "device": metadata["device"],
        "metadata": metadata,
    }


def render_report(report: dict) -> str:
    """report.md: headline figures, the curve, improvements, data, samples, config, provenance."""
    timings = report["timings_seconds"]
    headline = [
        {"what": "final validation loss (whole val set, nats/token)", "value": report["final_val_loss"]},
        {"what": "unigram entropy of the val set (nats/token)", "value": report["val_unigram_entropy"]},
        {"what": "entropy floor: the best possible model's loss (nats/token)",
         "value": report.get("val_entropy_floor") if report.get("val_entropy_floor") is not None else "— (not a generated corpus)"},
        {"what": "validation tokens evaluated", "value": report["val_tokens"]},
        {"what": "tokens seen in training", "value": report["tokens_seen"]},
        {"what": "optimizer steps", "value": report["steps"]},
        {"what": "training time / length", "value": f"{format_duration(report['training_seconds'] or 0)} / "
                                                   f"{run_length(report['budget_seconds'], report.get('max_iters'))}"},
        {"what": "whole command wall-clock", "value": format_duration(timings["total"])},
        {"what": "throughput (tokens/s)", "value": report["tokens_per_second"]},
        {"what": "MFU (model FLOPs / bf16 peak)", "value": f"{report['mfu']:.1%}" if report["mfu"] else "— (no GPU)"},
        {"what": "parameters (non-embedding)", "value": f"{report['parameters']:,} ({report['non_embedding_parameters']:,})"},
        {"what": "device", "value": report["device"]},
    ]
    improvements = [{"flag": f"--{k}", "value": v, "what": IMPROVEMENT_FLAGS[k]} for k, v in report["improvements"].items()]
    data = [{"key": k, "value": v} for k, v in report["data"].items()]
    meta = report["metadata"]
    parts = [
        f"# Leaderboard run ({report['preset']} preset)", "",
        f"Status: **{report['status']}**. Final validation loss **{report['final_val_loss']:.4f}** vs unigram "
        f"entropy {report['val_unigram_entropy']:.4f} of the same tokens "
        f"({report['val_loss_below_unigram_entropy']:+.3f} nats below)"
        + (f"; the corpus's entropy floor is {report['val_entropy_floor']:.4f}, {report['val_loss_above_floor']:.3f} "
           "nats below the model's loss." if report.get("val_entropy_floor") is not None else "."), "",
        markdown_table(headline, ["what", "value"]), "",
        "![validation loss against minutes](val_loss_vs_minutes.png)", "",
        "## Options of the recipe", "", markdown_table(improvements, ["flag", "value", "what"]), "",
        "## Data", "", markdown_table(data, ["key", "value"]), "",
        "## Samples", "",
    ]
    for sample in report["samples"]:
        parts += [f"**Prompt** `{sample['prompt']!r}` (temperature {sample['temperature']}, top-p {sample['top_p']}):", "",
                  "> " + sample["text"].replace("\n", "\n> "), ""]
    flags = [{"flag": k, "value": v} for k, v in report["flags"].items()]
    config = [{"key": k, "value": v} for k, v in flat_items(report["config"])]
    options = [{"key": k, "value": v} for k, v in report["options"].items()]
    parts += [
        "## Command and flags", "", f"`{meta['command']}`", "", markdown_table(flags, ["flag", "value"]), "",
        "## Leaderboard options", "", markdown_table(options, ["key", "value"]), "",
        "## Training configuration", "", markdown_table(config, ["key", "value"]), "",
        "## Provenance", "",
        markdown_table([{"key": "git SHA", "value": meta["git_sha"]}, {"key": "date", "value": meta["date"]},
                        {"key": "host", "value": meta["host"]}, {"key": "platform", "value": meta["platform"]},
                        *({"key": k, "value": v} for k, v in meta["versions"].items())], ["key", "value"]), "",
    ]
    return "\n".join(parts)


def write_run_report(run_dir: str | os.PathLike, report: dict, metrics: Sequence[dict]) -> None:
    """report.json, report.md, samples.md and val_loss_vs_minutes.png in the run folder."""
    folder = RunFolder(run_dir)
    write_json_atomic(folder.report, report)
    write_text_atomic(folder.report_markdown, render_report(report))
    write_text_atomic(folder.samples, "\n\n".join(f"## {s['prompt']!r}\n\n{s['text']}" for s in report["samples"]) + "\n")
    final = [{"elapsed_s": report["training_seconds"] or 0.0, "val_loss": report["final_val_loss"]}]
    plot_val_loss_vs_minutes(
        [*metrics], folder.val_curve_plot,
        f"{report['preset']} preset: final val loss {report['final_val_loss']:.3f} (whole val set)",
        {"unigram entropy of val set": report["val_unigram_entropy"], "final val loss (whole set)": final[0]["val_loss"],
         **({"entropy floor (best possible model)": report["val_entropy_floor"]}
            if report.get("val_entropy_floor") is not None else {})},
    )
