"""Benchmarks against peers, run as modules from the repository root (``python -m bench.NAME``);
raw results (JSON, PNG) go to ``bench/results/``."""
