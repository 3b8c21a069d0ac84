"""The leaderboard job, ``python -m train.leaderboard`` (see ``cli``): a pipeline over the
training core, one module per stage.

- ``options``: the job's own options and the resolved ``Job``;
- ``data``: data arguments -> a text source of ``tritonlm.corpora`` -> BPE tokenizer -> token
  files, each cached;
- ``pipeline``: ``run_leaderboard``, the stages in order (training is ``train.loop``);
- ``evaluate``: the final evaluation on every validation token;
- ``samples``: samples from the trained model;
- ``report``: the plan behind a preset, and the run's report;
- ``progress``: how far an interrupted run got (progress.json and its curve against the goal);
- ``cli``: the command line;
- ``stories``: the old name of ``tritonlm.corpora.stories``'s command line.
"""

from .options import Job, LeaderboardConfig
from .pipeline import run_leaderboard

__all__ = ["Job", "LeaderboardConfig", "run_leaderboard"]
