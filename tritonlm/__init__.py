"""tritonlm: a from-scratch language-model stack (byte-level BPE, a Transformer LM, fused Triton
kernels and a time-budgeted training stack).

Everything the project ships is imported under this one name, ``tritonlm.<package>``:

- ``tritonlm.tokenizer``: byte-level BPE trainer, encoder/decoder, token files;
- ``tritonlm.model``: the Transformer LM and resource accounting;
- ``tritonlm.kernels``: fused Triton kernels beside their PyTorch references;
- ``tritonlm.corpora``: every text source (shared corpora, downloads, generated stories, files);
- ``tritonlm.train``: optimizer, data, checkpoints, the loop, generation, leaderboard, experiments;
- ``tritonlm.util``: small utilities the others share.

Generic top-level names (``kernels``, ``model``, ``train``, ...) belong to other distributions
(Hugging Face's ``kernels`` ships with ``transformers`` 5) or to a user's own files, so the
project never imports itself under them.

Where the packages live: in an installed wheel they sit inside this folder. In a source checkout
(an editable install, or the repository root on ``sys.path``) they are the top-level folders of
the repository, beside this one, and ``__path__`` is extended to reach them; the repository's
``python -m train.leaderboard`` and friends are aliases of ``tritonlm.train.leaderboard`` (see
``_short_names``).
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

#: The packages of the distribution, each a folder of the repository.
PACKAGES = ("corpora", "kernels", "model", "tokenizer", "train", "util")


def _checkout_root() -> "_Path | None":
    """The repository root when this is a source checkout whose packages sit beside this folder."""
    here = _Path(__file__).resolve().parent
    if (here / "kernels").is_dir():  # an installed wheel: the packages are inside this folder
        return None
    root = here.parent
    if all((root / name / "__init__.py").is_file() for name in PACKAGES) and (root / "pyproject.toml").is_file():
        return root
    return None


_root = _checkout_root()
if _root is not None:
    __path__.append(str(_root))  # noqa: F821 (a package's __path__)
del _root
