"""The benchmark helpers' bookkeeping (ratios, JSON output), checked without a GPU."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")

from bench import common  # noqa: E402
from bench.common import Measurement, add_ratios, format_table  # noqa: E402


def _rows():
    case = ("softmax", "16384x4096 bf16", "fwd")
    return [
        Measurement(*case, "triton", 0.50, gbs=500.0, peak_mib=128.0),
        Measurement(*case, "reference", 2.00, peak_mib=512.0),
        Measurement(*case, "compiled-reference", 0.80, peak_mib=256.0),
        Measurement(*case, "builtin", None, note="out of memory"),
        Measurement("softmax", "16384x4096 bf16", "bwd", "triton", 1.0, peak_mib=64.0),
    ]


def test_ratios_compare_each_provider_with_its_best_peer_in_the_same_case():
    rows = {(r["direction"], r["provider"]): r for r in add_ratios(_rows())}
    triton = rows[("fwd", "triton")]
    assert triton["best_peer"] == "compiled-reference"
    assert triton["speedup_vs_best_peer"] == pytest.approx(0.80 / 0.50)
    assert triton["memory_vs_best_peer"] == pytest.approx(128.0 / 256.0)
    # a peer is compared with the other peers, never with Triton
    assert rows[("fwd", "reference")]["best_peer"] == "compiled-reference"
    # a provider that could not run has no ratio; a case without peers neither
    assert rows[("fwd", "builtin")]["speedup_vs_best_peer"] is None
    assert rows[("bwd", "triton")]["speedup_vs_best_peer"] is None


def test_results_are_written_atomically_with_run_metadata(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    rows = add_ratios(_rows())
    path = common.write_results("kernels", rows, {"copy_bandwidth_gbs": 1234.0})
    payload = json.loads(path.read_text())
    assert path.name == f"kernels-{common.device_slug()}.json"
    assert payload["copy_bandwidth_gbs"] == 1234.0 and len(payload["results"]) == len(rows)
    assert {"git_sha", "versions", "device", "date", "command"} <= set(payload["metadata"])
    assert list(tmp_path.glob("*.tmp")) == []  # no temporary file left behind
    table = format_table(rows)
    assert "compiled-reference" in table and "1.60" in table  # the speed-up column
    assert common.plot_speedups(rows, tmp_path / "speedups.png").stat().st_size > 0
