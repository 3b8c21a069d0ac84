"""The speedrun figures on docs/leaderboard.md are the committed result files' (a figure cannot
drift from the run that made it): each table row is checked against its JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PAGE = REPO / "docs" / "leaderboard.md"
SWEEP = REPO / "docs" / "results" / "speedrun-sweep" / "sweep.json"


def page_row(label: str) -> str:
    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"docs/leaderboard.md has {len(rows)} table rows for {label}"
    return rows[0]


def count(value: float) -> str:
    return f"{value / 1e6:.2f}M"


@pytest.mark.parametrize("candidate", [c["name"] for c in json.loads(SWEEP.read_text())["candidates"]])
def test_every_sweep_row_matches_sweep_json(candidate):
    entry = next(c for c in json.loads(SWEEP.read_text())["candidates"] if c["name"] == candidate)
    cells = [c.strip().strip("*") for c in page_row(f"`{candidate}`").split("|")[1:-1]]
    assert cells[2] == f"{entry['final_val_loss']['median']:.3f}"
    assert cells[3] == f"{entry['gap_to_floor']['median']:.3f}"
    assert cells[4] == count(entry["tokens"]["median"])
    assert cells[5] == f"{entry['tokens_per_s']['median'] / 1e3:.1f}k"


def test_the_floor_on_the_page_is_the_sweeps():
    floor = json.loads(SWEEP.read_text())["entropy_floor"]
    assert f"gap to the floor ({floor:.3f})" in PAGE.read_text(encoding="utf-8")
    assert re.search(r"\| candidate \| change \|", PAGE.read_text(encoding="utf-8"))
