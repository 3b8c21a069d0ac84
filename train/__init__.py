"""Training stack: optimizer, schedule, data, checkpoints, loop, generation, leaderboard."""
