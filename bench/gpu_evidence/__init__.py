"""One command that turns a few GPU minutes into the full evidence for the Triton kernels.

    python -m bench.gpu_evidence --out bench/results/gpu-evidence        # on an H100/H200, ~8 minutes
    python -m bench.gpu_evidence --out /tmp/evidence --smoke             # CPU rehearsal, < 2 minutes

Stages, each in its own time box (seconds, scaled to ``--budget``, which counts from process
start; a stage stops starting new work when its box or the whole budget is spent, and says so;
time a stage leaves unused is handed on to the stages after it):

1. environment: GPU, driver, CUDA, torch/triton versions, git SHA, measured copy bandwidth;
2. gate: every Triton op against the torch built-in, forward and all input gradients, every
   benchmark shape in bfloat16 and the first shapes in float32 too, each op in a child process
   of its own (``gate.py``, ``gate_child.py``);
3. kernels: Triton vs the eager formula vs ``torch.compile`` of it vs the built-in (``F.rms_norm``,
   ``F.softmax``, SDPA's flash and cuDNN backends, ``F.cross_entropy``) vs Liger-Kernel when it is
   importable, forward / backward / both, with GB/s and the fraction of the copy bandwidth
   (memory-bound ops), TFLOP/s and the fraction of the bf16 peak (attention, fused LM head), and
   peak memory;
4. training: tokens/s and MFU of the h100 preset model, reference vs Triton kernels, eager vs
   compiled, plus a torch.profiler table of the fastest variant;
5. leaderboard: ``python -m tritonlm.train.leaderboard --preset h100`` for 90 s on the built-in corpus.

What the run guarantees, so that one GPU session cannot be lost:

* Nothing is lost to a kill: everything is written to ``--out`` as it is measured
  (``evidence.jsonl`` flushed per record, ``summary.json`` and ``report.md`` rewritten after every
  record, PNG plots after every stage, the gate's per-op files under ``gate/``, the leaderboard's
  run folder); a run that completed ends with a ``run``/``end`` record.
* A crash or a hang in a kernel ends one op, not the run: each op's gate check runs in its own
  process (a CUDA illegal address poisons only that process's context) with a deadline taken from
  the gate's box; its checks, exit code, time-out and the tail of its output are recorded. Every
  shape the kernel stage times has been through the gate first, in a child.
* Only what passed is timed: an op that failed the gate (errors above tolerance, a crash, a
  time-out) or was skipped by it (its box ran out first, or the gate did not run) keeps its peers'
  timings, and its Triton rows say "not timed" and why, in the records, ``report.md`` and the
  speed-up plot.
* A failing stage, plot or report renderer is recorded (status "failed", the error and the end
  of its traceback, also printed) and the run goes on to the next stage; the command exits 0
  once its stages have run (2 for bad arguments).
* Compilation and autotuning are never timed: each provider is warmed up first (one forward and
  backward, synchronized), and the warm-up seconds are reported on their own. ``torch.compile``
  peers are compiled for each static shape (``dynamic=False``, Dynamo reset per case), as a user
  would compile for one shape.
* Autotuning is capped so the whole command fits 8 minutes on one H100: the run sets
  ``TRITONLM_MAX_AUTOTUNE_CONFIGS=2`` (unless already set) before the kernels are imported, in
  its own process and so in every child (on the CPU it sets ``TRITON_INTERPRET=1`` the same way).

``--smoke`` runs every stage at tiny shapes (on the CPU under Triton's interpreter when there is
no GPU); the test suite runs it, so the command cannot rot before a GPU is available.
``--inject-failure OP`` and ``--inject-failure stage:NAME`` are rehearsal aids: the first makes
OP's gate process crash hard after its first check, the second makes stage NAME raise once
started; the tests use them to prove that such failures are reported and the run goes on.
"""
