"""Ahead-of-time compilation of the kernels exactly as their launchers would launch them.

Three steps, none of which needs a GPU:

1. ``capture_launches``: run a launcher (``rmsnorm_forward``, ``attention_backward``, ...) on CPU
   tensors with Triton's launch methods replaced by a recorder, so what is captured is what a real
   launch passes: every argument (tensors, Python ints and floats), the compile-time flags, warps
   and stages, and for an autotuned kernel the configurations its pruner keeps for the target GPU.
2. ``compile_launch``: bind those arguments with Triton's own launch binder, so the compiled
   kernel gets the specialisation a launch gets (16-byte-aligned pointers and ints divisible by
   16 marked as such), then compile for ``sm_<arch>`` through Triton's whole pipeline, ptxas
   included. Float scalars are typed fp32 (a plain launch) or fp64 (what inductor passes for
   Python floats in a compiled graph).
3. The report of each compilation: shared memory (Triton's metadata), registers and spills
   (the ``ptxas -v`` log of the very ptxas run that made the cubin), and every fp64 instruction
   of the PTX beyond loading and converting a scalar once. A measurement that cannot be read is
   an error, never a silent pass.

This module must run with ``TRITON_INTERPRET`` unset: the interpreter replaces compiled kernels.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

import triton
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

from ._blocks import GpuTarget, simulate_target

# ptxas -v: "Used 168 registers, ..." and "0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads"
_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
# fp64 PTX instructions allowed: reading a scalar parameter and converting it to fp32 once.
_FP64_ALLOWED = re.compile(r"^\s*(ld\.param\.f64|cvt\.rn\.f32\.f64|cvt\.f32\.f64|mov\.f64|mov\.b64)\b")
_FP64 = re.compile(r"\.f64\b")


@dataclass
class Launch:
    """One captured launch: the kernel object (a JITFunction or an Autotuner around one), its
    positional arguments and keyword arguments (constexprs, warps, stages)."""

    kernel: object
    args: tuple
    kwargs: dict

    @property
    def fn(self) -> JITFunction:
        return self.kernel.fn if isinstance(self.kernel, Autotuner) else self.kernel

    @property
    def name(self) -> str:
        return self.fn.__name__.strip("_")


@contextlib.contextmanager
def capture_launches() -> Iterator[list[Launch]]:
    """Record the launches made in the block instead of running them (outputs stay unwritten)."""
    launches: list[Launch] = []
    originals = {JITFunction: JITFunction.run, Autotuner: Autotuner.run}

    def record_jit(self, *args, grid, warmup, **kwargs):
        launches.append(Launch(self, args, kwargs))

    def record_autotuned(self, *args, **kwargs):
        kwargs.pop("grid", None), kwargs.pop("warmup", None)
        launches.append(Launch(self, args, kwargs))

    JITFunction.run, Autotuner.run = record_jit, record_autotuned
    try:
        yield launches
    finally:
        for cls, run in originals.items():
            cls.run = run


def launch_configs(launch: Launch, target: GpuTarget) -> list[dict]:
    """The keyword arguments of every configuration the launch can run with on ``target``: the
    launch's own, or each autotuning configuration its pruner keeps there."""
    if not isinstance(launch.kernel, Autotuner):
        return [dict(launch.kwargs)]
    tuner = launch.kernel
    named = dict(zip(tuner.arg_names, launch.args))
    with simulate_target(target):
        configs = tuner.configs
        if tuner.early_config_prune:
            configs = tuner.early_config_prune(configs, named, **launch.kwargs)
    return [{**launch.kwargs, **c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages} for c in configs]


@dataclass
class CompileReport:
    """One kernel compiled at one configuration for one architecture."""

    kernel: str
    config: str
    arch: int
    floats: str  # "fp32" or "fp64": how the float scalars were typed
    ok: bool
    shared_bytes: int | None = None
    registers: int | None = None
    spill_bytes: int | None = None
    fp64_instructions: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def problems(self) -> list[str]:
        """What makes this compilation unfit to ship (empty when it is fine)."""
        if not self.ok:
            return [self.error or "did not compile"]
        found = []
        if self.spill_bytes:
            found.append(f"spills {self.spill_bytes} B")
        if self.fp64_instructions:
            found.append(f"{len(self.fp64_instructions)} fp64 instructions")
        limit = GpuTarget.for_arch(self.arch).shared_bytes
        if self.shared_bytes > limit:
            found.append(f"needs {self.shared_bytes} B of shared memory, sm_{self.arch} has {limit}")
        return found


def config_label(kwargs: dict) -> str:
    """A short, stable description of the compile-time choices of one configuration."""
    parts = []
    for key, value in sorted(kwargs.items()):
        if key in ("num_warps", "num_stages"):
            continue
        parts.append(f"{key}={int(value) if isinstance(value, bool) else value}")
    return " ".join(parts) + f" w{kwargs.get('num_warps', 4)} s{kwargs.get('num_stages', 3)}"


def _bind(fn: JITFunction, backend, args: tuple, kwargs: dict):
    """Triton's own launch binding: (options, signature, constexprs, attrs) of this call."""
    from triton.runtime.jit import create_function_from_signature

    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    return fn._pack_args(backend, kwargs, bound_args, specialization, options)


def specialisation_key(launch: Launch, kwargs: dict) -> str:
    """What a launch's specialisation depends on: argument types, divisibility and constexprs."""
    from triton.backends.compiler import GPUTarget as TritonTarget
    from triton.compiler import make_backend

    _, signature, constexprs, attrs = _bind(launch.fn, make_backend(TritonTarget("cuda", 90, 32)), launch.args,
                                            kwargs)
    return repr((sorted(signature.items()), sorted(constexprs.items(), key=str), sorted(attrs.items(), key=str)))


def _float_params(fn: JITFunction, signature: dict) -> list[str]:
    return [name for name in fn.arg_names if signature.get(name) in ("fp32", "fp64")]


def _ptxas_usage(log: str, name: str) -> tuple[int, int]:
    registers, spills = _REGISTERS.search(log), _SPILLS.search(log)
    if registers is None or spills is None:
        raise RuntimeError(f"could not read registers and spills of {name} from the ptxas log:\n{log[-1500:]}")
    return int(registers.group(1)), int(spills.group(1)) + int(spills.group(2))


def fp64_instructions(ptx: str) -> list[str]:
    """PTX lines doing fp64 work beyond reading and converting a scalar argument."""
    return [line.strip() for line in ptx.splitlines()
            if _FP64.search(line) and not _FP64_ALLOWED.match(line) and not line.lstrip().startswith((".", "//"))]


def compile_launch(launch: Launch, kwargs: dict, arch: int, floats: str = "fp32") -> CompileReport:
    """Compile ``launch`` with configuration ``kwargs`` for ``sm_<arch>`` and report it."""
    from triton.backends.compiler import GPUTarget as TritonTarget
    from triton.compiler import ASTSource, make_backend

    fn = launch.fn
    label = config_label({k: v for k, v in kwargs.items() if k in fn.arg_names or k.startswith("num_")})
    report = CompileReport(launch.name, label, arch, floats, ok=False)
    target = TritonTarget("cuda", arch, 32)
    try:
        options, signature, constexprs, attrs = _bind(fn, make_backend(target), launch.args, kwargs)
        if floats == "fp64":
            signature = {**signature, **{n: "fp64" for n in _float_params(fn, signature)}}
        log = io.StringIO()
        with _ptxas_log_on(), contextlib.redirect_stdout(log):
            compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                      options=options.__dict__)
        report.registers, report.spill_bytes = _ptxas_usage(log.getvalue(), launch.name)
    except Exception as e:  # the compiler's own message is the useful part
        report.error = f"{type(e).__name__}: {e}"[:1500]
        return report
    report.ok = True
    report.shared_bytes = int(compiled.metadata.shared)
    report.fp64_instructions = fp64_instructions(compiled.asm["ptx"])[:20]
    return report


@contextlib.contextmanager
def _ptxas_log_on():
    """Compile every time (no cache hit: the ptxas log is only written by a real ptxas run) and
    have Triton print that log."""
    saved = {k: os.environ.get(k) for k in ("TRITON_ALWAYS_COMPILE", "TRITON_DUMP_PTXAS_LOG")}
    os.environ.update(TRITON_ALWAYS_COMPILE="1", TRITON_DUMP_PTXAS_LOG="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def capture(run: Callable[[], object]) -> list[Launch]:
    """The launches ``run()`` makes (its kernels do not run)."""
    with capture_launches() as launches:
        run()
    return launches
