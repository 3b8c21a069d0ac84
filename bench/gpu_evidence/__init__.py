"""One command that turns a few GPU minutes into the full evidence for the Triton kernels.

    python -m bench.gpu_evidence --out bench/results/gpu-evidence        # on an H100/H200, ~8 minutes
    python -m bench.gpu_evidence --out /tmp/evidence --smoke             # CPU rehearsal, < 2 minutes

Stages, each in its own time box (seconds, scaled to ``--budget``; a stage stops starting new work
when its box or the whole budget is spent, and says so):

1. environment: GPU, driver, CUDA, torch/triton versions, git SHA, measured copy bandwidth;
2. gate: every Triton op against the torch built-in at the benchmark shapes, forward and all input
   gradients, float32 and bfloat16; an op that fails is reported and left out of the timings;
3. kernels: Triton vs the eager formula vs ``torch.compile`` of it vs the built-in (``F.rms_norm``,
   ``F.softmax``, SDPA's flash and cuDNN backends, ``F.cross_entropy``) vs Liger-Kernel when it is
   importable, forward / backward / both, with GB/s and the fraction of the copy bandwidth
   (memory-bound ops), TFLOP/s and the fraction of the bf16 peak (attention, fused LM head), and
   peak memory;
4. training: tokens/s and MFU of the h100 preset model, reference vs Triton kernels, eager vs
   compiled, plus a torch.profiler table of the fastest variant;
5. leaderboard: ``python -m train.leaderboard --preset h100`` for 90 s on the built-in corpus.

Everything is written to ``--out`` as it is measured (``evidence.jsonl``, ``summary.json``,
``report.md``, PNG plots, the leaderboard's run folder), so a run killed at any point keeps what
finished. ``--smoke`` runs every stage at tiny shapes (on the CPU under Triton's interpreter when
there is no GPU); the test suite runs it, so the command cannot rot before a GPU is available.
"""
