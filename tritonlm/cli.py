"""``tritonlm COMMAND ...``: one command for every job; each subcommand is the same function its
``python -m`` module runs, so the two spellings take the same flags and print the same things.

    tritonlm train-tokenizer corpus.txt --vocab-size 10000 --out tok/
    tritonlm encode corpus.txt --tokenizer tok/ --out corpus.bin
    tritonlm train --train_data=corpus.bin --out_dir=runs/a
    tritonlm generate runs/a --prompt "Once upon a time" --stream
    tritonlm export runs/a hf/a
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> (module whose ``main(argv)`` runs it, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "train-tokenizer": ("tritonlm.tokenizer.train", "train a byte-level BPE tokenizer on a text file"),
    "encode": ("tritonlm.tokenizer.encode", "encode a text file into a token file"),
    "train": ("tritonlm.train.train", "train a model on token files (every TrainConfig field is a flag)"),
    "generate": ("tritonlm.train.generate", "sample text from a trained run"),
    "evaluate": ("tritonlm.train.perplexity", "a run's loss and perplexity on every token of a token file"),
    "export": ("tritonlm.train.export", "a run as a Hugging Face folder, or a tokenizer as tokenizer.json"),
    "leaderboard": ("tritonlm.train.leaderboard.cli", "the main job: text in, trained model and report out"),
    "speedrun": ("tritonlm.train.leaderboard.speedrun", "the plain recipe and the project's, side by side"),
    "sweep": ("tritonlm.train.leaderboard.sweep", "the recipe search behind the cpu recipe"),
    "experiments": ("tritonlm.train.experiments.cli", "the experiment series of the written answers"),
    "accounting": ("tritonlm.model.accounting.report", "parameters, FLOPs and training memory of a model shape"),
    "stories": ("tritonlm.corpora.stories", "write the generated children's stories corpus"),
    "download": ("tritonlm.corpora.downloads", "download a corpus (tinystories, owt) into the cache"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tritonlm COMMAND [options]   (tritonlm COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"error: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
