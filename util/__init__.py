"""Small utilities every package of the project may import (and that import nothing of it):
atomic file writes, run metadata, dataclass configs as command-line flags, plotting without a
display, and the cache of the shared corpora."""
