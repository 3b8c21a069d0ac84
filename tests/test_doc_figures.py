"""The figures of docs/writeup.md, docs/results.md, docs/leaderboard.md and docs/training.md held
against the result files they come from.

The convention, readable on GitHub: a figure that comes from a JSON result file is the text of a
Markdown link to that file, and the link's fragment is a JSON pointer (RFC 6901) naming the value::

    peak memory grew [1.28x](../bench/results/tokenizer_train-cpu-intel-r-xeon-r-processor-x2.json#/rss_growth_ours/100->200MB)

- The path is relative to the page, as for any Markdown link; the fragment starts with ``/``
  (``~1`` stands for ``/`` and ``~0`` for ``~`` inside a key; percent-escapes are decoded).
- A JSON Lines file (``.jsonl``, such as a run's ``metrics.jsonl``) is read as the list of its
  records, so ``metrics.jsonl#/12/val_loss`` is the validation loss of its 13th record.
- The fragment may end in ``*FACTOR`` when the page shows another unit than the file: the value is
  multiplied by FACTOR before comparing (``#/corpus_bytes*1e-6`` for bytes shown as MB,
  ``#/first_in_second*100`` for a fraction shown as a percentage).
- The figure is the first number of the link text: an optional sign, digits with optional
  thousands separators (``1,234``), optional decimals and exponent (``4.5e12``); what follows it
  (a unit, ``x``, ``%``, ``M``) is text for the reader and is not read.
- It matches when the value, rounded to the decimals the page shows, is the figure: ``16.5`` matches
  16.46 and ``2.1M`` (with ``*1e-6``) matches 2,146,980.

A link to a JSON file without a ``#`` fragment is a plain reference and is not checked; a ``.json``
link whose fragment is not a pointer, whose file or pointer is missing, whose value is not a number
or whose text holds no number fails, as does a figure that differs from its file. Links inside code
spans and fenced code blocks are not links and are skipped.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

# The least number of checked figures each page holds: a page whose links were lost (by a
# regeneration that does not write them, say) fails here instead of passing with nothing checked.
MIN_FIGURES = {"writeup.md": 420, "results.md": 1450, "leaderboard.md": 40, "training.md": 31}

LINK = re.compile(r"\[(?P<text>[^\[\]]*)\]\((?P<target>[^()\s]*?\.jsonl?)(?:#(?P<fragment>[^()\s]*))?\)")
NUMBER = re.compile(r"(?<![\w.])(?P<sign>[-+\u2212]?)(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
                    r"(?:\.(?P<frac>\d+))?(?:[eE](?P<exp>[-+]?\d+))?")
SCALE = re.compile(r"\*(?P<factor>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)


@dataclass(frozen=True)
class Figure:
    """A number as the page shows it: its value and the half-unit of its last digit."""

    value: float
    tolerance: float
    text: str


def first_number(text: str) -> Figure | None:
    """The first number of a link's text (see the module docstring), or None."""
    m = NUMBER.search(text)
    if m is None:
        return None
    sign = -1.0 if m["sign"] in ("-", "\u2212") else 1.0
    digits = m["int"].replace(",", "") + ("." + m["frac"] if m["frac"] else "")
    exp = int(m["exp"] or 0)
    value = sign * float(digits) * 10.0 ** exp
    decimals = len(m["frac"] or "")
    return Figure(value, 0.5 * 10.0 ** (exp - decimals), m.group(0))


def matches(figure: Figure, value: float) -> bool:
    """Whether ``value`` rounds to the figure at the precision the page shows it."""
    return abs(value - figure.value) <= figure.tolerance * (1 + 1e-9) + 1e-12 * abs(value)


def resolve_pointer(document, pointer: str):
    """The value at a JSON pointer (RFC 6901); KeyError naming the first missing step."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(f"the pointer {pointer!r} does not start with '/'")
    node = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if token not in node:
                raise KeyError(f"no key {token!r} (keys there: {', '.join(sorted(map(str, node))[:12])})")
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                raise KeyError(f"no item {token!r} in a list of {len(node)}")
            node = node[int(token)]
        else:
            raise KeyError(f"{token!r} asked of a {type(node).__name__}, which has no members")
    return node


def read_result_file(path: Path):
    """A JSON file's document, or a JSON Lines file's records as a list."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def blank_code(markdown: str) -> str:
    """The page with its fenced blocks and code spans blanked out, line numbers kept."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))
    return CODE_SPAN.sub(blank, FENCE.sub(blank, markdown))


def check_markdown(markdown: str, base: Path, name: str) -> tuple[int, list[str]]:
    """(figures checked, problems) for a Markdown text whose links are relative to ``base``."""
    checked, problems, cache = 0, [], {}
    text = blank_code(markdown)
    for m in LINK.finditer(text):
        fragment = m["fragment"]
        if fragment is None:
            continue  # a link to the whole file: a reference, not a figure
        line = text.count("\n", 0, m.start()) + 1
        where = f"{name}:{line}: [{m['text']}]({m['target']}#{fragment})"
        pointer, factor = urllib.parse.unquote(fragment), 1.0
        scale = SCALE.search(pointer)
        if scale:
            pointer, factor = pointer[:scale.start()], float(scale["factor"])
        if not pointer.startswith("/"):
            problems.append(f"{where}: the fragment is not a JSON pointer (it must start with '/')")
            continue
        figure = first_number(m["text"])
        if figure is None:
            problems.append(f"{where}: the link text holds no number to check")
            continue
        path = (base / urllib.parse.unquote(m["target"])).resolve()
        if path not in cache:
            try:
                cache[path] = read_result_file(path)
            except FileNotFoundError:
                cache[path] = FileNotFoundError
            except (OSError, ValueError) as e:
                cache[path] = e
        document = cache[path]
        if document is FileNotFoundError:
            problems.append(f"{where}: the file {m['target']} does not exist")
            continue
        if isinstance(document, Exception):
            problems.append(f"{where}: the file {m['target']} cannot be read as JSON ({document})")
            continue
        try:
            value = resolve_pointer(document, pointer)
        except KeyError as e:
            problems.append(f"{where}: {m['target']} has nothing at {pointer}: {e.args[0]}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{where}: {m['target']} holds {value!r} at {pointer}, not a finite number")
            continue
        scaled = value * factor
        checked += 1
        if not matches(figure, scaled):
            shown = f"{value!r}" + (f" x {scale['factor']} = {scaled!r}" if scale else "")
            problems.append(f"{where}: the page shows {figure.text}, but {m['target']} holds {shown} at {pointer}")
    return checked, problems


def check_page(page: str) -> tuple[int, list[str]]:
    path = DOCS / page
    return check_markdown(path.read_text(encoding="utf-8"), path.parent, f"docs/{page}")


@pytest.mark.parametrize("page", sorted(MIN_FIGURES))
def test_figures_match_their_result_files(page):
    _, problems = check_page(page)
    assert not problems, f"{len(problems)} figure(s) of docs/{page} disagree with their files:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", sorted(MIN_FIGURES))
def test_pages_keep_their_checked_figures(page):
    checked, _ = check_page(page)
    assert checked >= MIN_FIGURES[page], (
        f"docs/{page} has {checked} checked figures, fewer than {MIN_FIGURES[page]}: figures lost their links "
        "to the result files (see tests/test_doc_figures.py)")
    assert "tests/test_doc_figures.py" in (DOCS / page).read_text(encoding="utf-8"), (
        f"docs/{page} no longer tells its readers how its figures are checked")


def test_results_page_is_what_its_generator_renders():
    """docs/results.md is written by ``python -m train.experiments.results`` from docs/results/:
    a hand edit, or a result file changed without regenerating, shows here."""
    from tritonlm.train.experiments.results import render

    page = DOCS / "results.md"
    assert page.read_text(encoding="utf-8") == render(DOCS / "results", page), (
        "docs/results.md differs from what its generator renders: run `python -m train.experiments.results`")


@pytest.mark.parametrize("text, value, tolerance", [
    ("16.5 s", 16.5, 0.05), ("1,234", 1234, 0.5), ("14,020,608 tokens", 14020608, 0.5), ("-0.06", -0.06, 0.005),
    ("\u22120.06", -0.06, 0.005), ("+0.33", 0.33, 0.005), ("1.28x", 1.28, 0.005), ("97.9%", 97.9, 0.05),
    ("~13 hours", 13, 0.5), ("T 0.5", 0.5, 0.05), ("4.51e12", 4.51e12, 0.005e12), ("2.1M calls", 2.1, 0.05),
])
def test_number_grammar(text, value, tolerance):
    figure = first_number(text)
    assert figure is not None and math.isclose(figure.value, value) and math.isclose(figure.tolerance, tolerance)


def test_rounding():
    assert matches(first_number("16.5"), 16.46) and matches(first_number("16.5"), 16.54)
    assert not matches(first_number("16.5"), 16.56) and not matches(first_number("16.4"), 16.46)
    assert matches(first_number("97.9%"), 0.9785 * 100) and matches(first_number("321"), 321.1)
    assert not matches(first_number("1.09x"), 1.282)


def test_the_checker_catches_what_it_should(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "r.json").write_text(json.dumps({
        "growth": {"100->200MB": 1.282}, "rows": [{"bytes": 2038778, "share": 0.9785, "n": 294883}],
        "a/b": 3.0, "name": "x", "flag": True}))
    page = "\n".join([
        "# A page",
        "good: [1.28x](res/r.json#/growth/100->200MB), [2.04 MB](res/r.json#/rows/0/bytes*1e-6),",
        "[97.9%](res/r.json#/rows/0/share*100), [294,883](res/r.json#/rows/0/n), [3](res/r.json#/a~1b),",
        "a plain reference [the file](res/r.json), and `[9.99](res/r.json#/growth/100->200MB)` in code.",
        "```",
        "[9.99](res/r.json#/rows/0/n)",
        "```",
        "wrong: [1.09x](res/r.json#/growth/100->200MB)",
        "no file: [1.0](res/gone.json#/growth)",
        "no pointer: [1.0](res/r.json#/rows/1/n)",
        "no number: [the growth](res/r.json#/growth/100->200MB)",
        "not a number: [1](res/r.json#/name) [1](res/r.json#/flag)",
        "not a pointer: [1.28](res/r.json#growth)",
        "wrong unit: [2.04 MB](res/r.json#/rows/0/bytes)",
        "records: [4.20](res/m.jsonl#/1/val_loss) good, [4.3](res/m.jsonl#/0/val_loss) wrong, [1](res/m.jsonl#/2/x) good, [1](res/m.jsonl#/3/x) none",
    ])
    (tmp_path / "res" / "m.jsonl").write_text('{"val_loss": 7.73}\n{"val_loss": 4.2049}\n\n{"x": 1}\n')
    checked, problems = check_markdown(page, tmp_path, "page.md")
    assert checked == 5 + 2 + 3  # the five good figures, the wrong one, the one in the wrong unit; three records
    assert len(problems) == 10, "\n".join(problems)
    assert "page.md:15:" in problems[8] and "shows 4.3" in problems[8] and "7.73" in problems[8]
    assert "page.md:15:" in problems[9] and "no item '3' in a list of 3" in problems[9]
    wrong = problems[0]
    assert wrong.startswith("page.md:8: [1.09x](res/r.json#/growth/100->200MB)")
    assert "shows 1.09" in wrong and "1.282" in wrong and "/growth/100->200MB" in wrong
    assert "page.md:9:" in problems[1] and "does not exist" in problems[1]
    assert "page.md:10:" in problems[2] and "nothing at /rows/1/n" in problems[2]
    assert "page.md:11:" in problems[3] and "no number" in problems[3]
    assert "'x'" in problems[4] and "True" in problems[5] and "not a finite number" in problems[5]
    assert "page.md:13:" in problems[6] and "not a JSON pointer" in problems[6]
    assert "page.md:14:" in problems[7] and "2038778" in problems[7]
