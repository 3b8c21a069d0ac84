"""``python -m tritonlm COMMAND ...``: the ``tritonlm`` command (``tritonlm.cli``)."""

import sys

from tritonlm.cli import main

sys.exit(main())
