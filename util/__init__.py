"""Small utilities every package of the project may import (and that import nothing of it):
atomic file writes, run metadata, dataclass configs as command-line flags, plotting without a
display, and the cache of the shared corpora."""

if __name__ != "tritonlm.util":  # the folder imported as `util` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.util, or another installed distribution named util
