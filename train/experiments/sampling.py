"""``python -m train.experiments sampling --run RUN``: what temperature and top-p do to a trained model's samples.

Every setting of a temperature x top-p grid continues the same prompts with the same seed by
the same number of tokens (generation does not stop at ``<|endoftext|>``, so every sample is
full length). Two measures make the effect visible without reading every sample:

- **repetition**: the share of the sample's word 4-grams that repeat an earlier one. Greedy and
  low-temperature decoding fall into loops, and this rises;
- **known words**: the share of the sample's words (lower-cased letter runs) that occur in a
  reference text of the corpus (its validation text). Sampling from the flat tail of the
  distribution (high temperature, no nucleus) strings pieces into non-words, and this falls.

``--compare RUN ...`` asks what training buys instead: the run and each other run (of the same
corpus, trained longer or shorter) continue the same prompts with the same seed at one setting
(temperature 0.8, top-p 0.95, the leaderboard's), measured alike, beside each run's tokens and loss.

Writes ``<out>/<name>/sampling.md`` (the tables, the plot and one full sample per setting),
``sampling.json`` and ``sampling.png``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.train.generate import generate, tokenizer_vocab_size
from tritonlm.train.presentation import markdown_table
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.runinfo import run_metadata

WORD = re.compile(r"[a-z]+")
DEFAULT_PROMPTS = ("It was a ", "The ", "")
DEFAULT_TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.3)
DEFAULT_TOP_PS = (1.0, 0.95, 0.8)
RUNS_TABLE_COLUMNS = ("run", "tokens_seen", "final_val_loss", "known_words", "repeated_4grams")
RUNS_TABLE_HEADERS = ("run", "tokens seen", "final val loss", "known words", "repeated word 4-grams")


@dataclass(frozen=True)
class Setting:
    temperature: float
    top_p: float

    @property
    def label(self) -> str:
        return "greedy" if self.temperature == 0 else f"T {self.temperature:g}, top-p {self.top_p:g}"


def settings_grid(temperatures, top_ps) -> list[Setting]:
    """Every temperature with every top-p; greedy decoding (temperature 0) once, as top-p does
    not change an argmax."""
    grid = []
    for t in temperatures:
        grid += [Setting(0.0, 1.0)] if t == 0 else [Setting(t, p) for p in top_ps]
    return grid


def words(text: str) -> list[str]:
    return WORD.findall(text.replace(END_OF_TEXT, "\n").lower())


def repetition(text: str, n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in the text (0 when it has none)."""
    w = words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def known_word_share(text: str, vocabulary: set[str]) -> float:
    """Share of the text's words found in ``vocabulary`` (1 when it has no words)."""
    w = words(text)
    return sum(x in vocabulary for x in w) / len(w) if w else 1.0


def draw(model, tokenizer, prompts, grid: list[Setting], new_tokens: int, seed: int) -> list[dict]:
    """One sample per prompt and setting, each from a generator seeded alike."""
    limit = min(tokenizer_vocab_size(tokenizer), model.config.vocab_size)
    start = tokenizer.encode(END_OF_TEXT)
    samples = []
    for setting in grid:
        for prompt in prompts:
            generator = torch.Generator(device=model.lm_head.weight.device).manual_seed(seed)
            ids = tokenizer.encode(prompt) if prompt else start
            new = generate(model, ids, new_tokens, setting.temperature, setting.top_p, None, generator,
                           vocab_limit=limit)
            samples.append({"setting": setting.label, "temperature": setting.temperature, "top_p": setting.top_p,
                            "prompt": prompt, "new_tokens": len(new), "text": prompt + tokenizer.decode(new)})
    return samples


def summarise(samples: list[dict], vocabulary: set[str]) -> list[dict]:
    """Per setting: mean repetition and known-word share over its prompts."""
    rows = {}
    for s in samples:
        row = rows.setdefault(s["setting"], {"setting": s["setting"], "temperature": s["temperature"],
                                             "top_p": s["top_p"], "rep": [], "known": []})
        row["rep"].append(repetition(s["text"]))
        row["known"].append(known_word_share(s["text"], vocabulary))
    return [{**{k: v for k, v in r.items() if k not in ("rep", "known")},
             "repeated_4grams": sum(r["rep"]) / len(r["rep"]), "known_words": sum(r["known"]) / len(r["known"])}
            for r in rows.values()]


def compare_runs(run_dirs, vocabulary: set[str], setting: Setting, prompts, new_tokens: int, seed: int,
                 tokenizer: str | None = None) -> list[dict]:
    """The same prompts, seed and setting on each run: what its training buys in sample quality,
    beside the tokens it saw and its final loss (from its report.json, when it has one)."""
    from tritonlm.train.run_folder import RunFolder, load_run

    rows = []
    for run_dir in run_dirs:
        model, tok = load_run(run_dir, tokenizer=tokenizer)
        measured = summarise(draw(model.eval(), tok, prompts, [setting], new_tokens, seed), vocabulary)[0]
        report = RunFolder(run_dir).report
        facts = json.loads(report.read_text()) if report.is_file() else {}
        rows.append({"run": Path(run_dir).name, "tokens_seen": facts.get("tokens_seen"),
                     "final_val_loss": facts.get("final_val_loss"), **measured})
    return rows


def plot(rows: list[dict], out: Path) -> None:
    fig, (ax_k, ax_r) = pyplot().subplots(1, 2, figsize=(10, 4))
    for top_p in sorted({r["top_p"] for r in rows if r["temperature"] > 0}, reverse=True):
        pts = sorted((r["temperature"], r["known_words"], r["repeated_4grams"]) for r in rows
                     if r["top_p"] == top_p and r["temperature"] > 0)
        t, known, rep = zip(*pts)
        ax_k.plot(t, known, "o-", label=f"top-p {top_p:g}")
        ax_r.plot(t, rep, "o-", label=f"top-p {top_p:g}")
    for r in rows:
        if r["temperature"] == 0:
            ax_k.plot([0], [r["known_words"]], "k*", ms=10, label="greedy")
            ax_r.plot([0], [r["repeated_4grams"]], "k*", ms=10, label="greedy")
    ax_k.set(xlabel="temperature", ylabel="share of words found in the reference text", title="Real words")
    ax_r.set(xlabel="temperature", ylabel="share of repeated word 4-grams", title="Repetition")
    for ax in (ax_k, ax_r):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out, dpi=110)


def write_outputs(out_dir: Path, run: str, rows: list[dict], samples: list[dict], new_tokens: int,
                  runs: list[dict] | None = None) -> None:
    table = markdown_table(rows, ["setting", "known_words", "repeated_4grams"],
                           ["setting", "known words", "repeated word 4-grams"])
    first_prompt = samples[0]["prompt"]
    examples = []
    for r in rows:
        text = next(s["text"] for s in samples if s["setting"] == r["setting"] and s["prompt"] == first_prompt)
        examples += [f"**{r['setting']}**", "", "> " + text.replace("\n", " ").strip(), ""]
    page = ["## Sampling: temperature and top-p", "",
            f"Run `{run}`; {new_tokens} new tokens per sample, the same prompts and seed at every setting; "
            "means over the prompts.", "", table, "", "![sampling](sampling.png)", "",
            f"### One sample per setting (prompt {first_prompt!r})", "", *examples]
    if runs:
        shown = [{**r, "tokens_seen": "-" if r["tokens_seen"] is None else f"{r['tokens_seen']:,}"} for r in runs]
        page += [f"### What training buys ({runs[0]['setting']}, the same prompts and seed)", "",
                 markdown_table(shown, RUNS_TABLE_COLUMNS, RUNS_TABLE_HEADERS), ""]
    write_text_atomic(out_dir / "sampling.md", "\n".join(page) + "\n")
    write_json_atomic(out_dir / "sampling.json", {"metadata": run_metadata(), "run": run, "rows": rows,
                                                  "samples": samples, **({"runs": runs} if runs else {})}, indent=1)
    plot(rows, out_dir / "sampling.png")


#: The setting ``--compare`` holds fixed: the leaderboard's own samples are drawn at it.
COMPARE_SETTING = Setting(0.8, 0.95)


def run(run_dir: str, reference: Path, out_dir: Path, prompts=DEFAULT_PROMPTS, temperatures=DEFAULT_TEMPERATURES,
        top_ps=DEFAULT_TOP_PS, new_tokens: int = 256, seed: int = 0, tokenizer: str | None = None,
        compare: tuple[str, ...] = ()) -> list[dict]:
    from tritonlm.train.run_folder import load_run

    model, tok = load_run(run_dir, tokenizer=tokenizer)
    model.eval()
    vocabulary = set(words(reference.read_text(encoding="utf-8")))
    samples = draw(model, tok, prompts, settings_grid(temperatures, top_ps), new_tokens, seed)
    rows = summarise(samples, vocabulary)
    runs = (compare_runs([run_dir, *compare], vocabulary, COMPARE_SETTING, prompts, new_tokens, seed, tokenizer)
            if compare else None)
    write_outputs(out_dir, str(run_dir), rows, samples, new_tokens, runs)
    for r in [*rows, *(runs or [])]:
        print(f"{r.get('run', r['setting']):22} known words {r['known_words']:.3f}, "
              f"repeated 4-grams {r['repeated_4grams']:.3f}")
    print(f"table, plot and samples in {out_dir}")
    return rows
