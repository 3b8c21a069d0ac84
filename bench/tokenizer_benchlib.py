"""Helpers for the tokenizer benchmarks: run one job in a fresh process and measure it.

Each measured job (our trainer, HF's trainer, a streaming encode) runs as
``python -m bench.tokenizer_benchlib JOB ARGS...`` in a new process, so peak memory is that of
the job alone. The parent samples the summed RSS of the whole process tree (the job and its
workers) from /proc every 25 ms; the child reports its own wall time for the measured call
only (interpreter start-up and imports excluded, for every peer alike).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.util.process_memory import run_sampling_memory, status_kb

REPO = Path(__file__).resolve().parent.parent
EOT = END_OF_TEXT


def run_job(job: str, *args, env: dict | None = None) -> dict:
    """Run a job in a fresh process; its JSON result plus the sampled peak RSS of its tree (MB)."""
    cmd = [sys.executable, "-m", "bench.tokenizer_benchlib", job, *map(str, args)]
    run = run_sampling_memory(cmd, cwd=REPO, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{job} failed ({run.returncode}): {run.stdout[-2000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["peak_tree_rss_mb"] = run.peak_tree_rss_mb
    return result


def summarise(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def machine_load() -> dict:
    one, five, fifteen = os.getloadavg()
    return {"loadavg_1m": one, "loadavg_5m": five, "loadavg_15m": fifteen, "cpus": os.cpu_count()}


# ---- jobs (run in the child) ---------------------------------------------------------------

def job_train_ours(path: str, vocab_size: str, workers: str) -> dict:
    from tritonlm.tokenizer.bpe import count_pretokens
    from tritonlm.tokenizer.merges import learn_merges

    start = time.perf_counter()
    counts = count_pretokens(path, [EOT], num_workers=int(workers))
    mid = time.perf_counter()
    words = {w.encode("utf-8"): n for w, n in counts.items()}
    del counts
    vocab, merges = learn_merges(words, int(vocab_size), [EOT])
    end = time.perf_counter()
    return {"seconds": end - start, "pretokenise_s": mid - start, "merge_s": end - mid,
            "distinct_pretokens": len(words), "vocab": len(vocab)}


def job_train_hf(path: str, vocab_size: str, workers: str) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    start = time.perf_counter()
    tok.train([path], trainer)
    return {"seconds": time.perf_counter() - start, "vocab": tok.get_vocab_size(),
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS")}


def job_stream_encode(path: str) -> dict:
    """Stream-encode a file; peak extra memory from VmHWM (ru_maxrss would include the parent's
    peak from before exec)."""
    from tritonlm.tokenizer import Tokenizer
    from tritonlm.corpora.shared import fixture_path

    tok = Tokenizer.from_files(fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt"), [EOT])
    (baseline,) = status_kb(os.getpid(), ("VmRSS",))
    n, start = 0, time.perf_counter()
    with open(path, encoding="utf-8") as f:
        for n, _ in enumerate(tok.encode_iterable(f), 1):
            pass
    seconds = time.perf_counter() - start
    (peak,) = status_kb(os.getpid(), ("VmHWM",))
    return {"seconds": seconds, "tokens": n, "baseline_rss_mb": baseline / 1024,
            "peak_rss_mb": peak / 1024, "extra_rss_mb": (peak - baseline) / 1024}


JOBS = {"train-ours": job_train_ours, "train-hf": job_train_hf, "stream-encode": job_stream_encode}

if __name__ == "__main__":
    print(json.dumps(JOBS[sys.argv[1]](*sys.argv[2:])))
