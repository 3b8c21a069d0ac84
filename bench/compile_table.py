"""The ahead-of-time compile table: every kernel at every configuration its launcher or autotuner
can pick, compiled for sm_80 (A100), sm_89 (RTX 4090) and sm_90 (H100) with fp32 and with fp64
float scalars (see ``tritonlm.kernels.compile_check``), saved with the run's metadata.

    python -m bench.compile_table              # bench/results/compile_table-triton-<version>.json
    python -m bench.compile_table --quick      # the slice CI compiles

No GPU is needed: Triton's compiler and its bundled ptxas run on the CPU. The file name carries
the Triton version because registers and spills are the compiler's: run it once per version in
the supported range (3.6 on the GPU machines, the newest for a fresh install).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench.common import RESULTS_DIR
from tritonlm.kernels import compile_check
from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.runinfo import run_metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compile_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the representative slice only")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiler processes")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        parser.error("unset TRITON_INTERPRET: under the interpreter there is nothing to compile")
    import triton

    started = time.perf_counter()
    compile_check.use_captured_launches()
    archs, floats = list(compile_check.ARCHS), ["fp32", "fp64"]
    rows = compile_check.compile_table(args.quick, archs, floats, args.jobs)
    totals = compile_check.summary(rows)
    bad = [r for r in rows if r["problems"]]
    suffix = "-quick" if args.quick else ""
    path = RESULTS_DIR / f"compile_table-triton-{triton.__version__}{suffix}.json"
    write_json_atomic(path, {
        "metadata": run_metadata(), "command": "python -m bench.compile_table" + (" --quick" if args.quick else ""),
        "archs": {f"sm_{a}": compile_check.ARCH_NAMES[a] for a in archs}, "floats": floats,
        "seconds": round(time.perf_counter() - started, 1), "totals": totals, "unfit": len(bad), "rows": rows,
    }, indent=1)
    compile_check.print_table(bad)
    compile_check.print_totals(totals)
    print(f"{len(rows) - len(bad)}/{len(rows)} compilations fit their GPU -> {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
