"""The experiments, ``python -m train.experiments KIND`` (see ``cli``): resumable sweeps of short
training runs over the leaderboard's data preparation, and the checks behind the written answers.

- ``cli``: the kinds of experiment and their runs (learning rates, batch sizes, ablations);
- ``sweep``: running a list of runs resumably, and their table and overlay plot;
- ``tokenizers``: bytes per token and throughput of several tokenizers;
- ``writeup_checks``: the small computations behind docs/writeup.md;
- ``results``: ``python -m train.experiments.results``, the docs/results.md page.
"""
