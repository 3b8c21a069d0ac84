"""``python -m model.accounting``: the accounting report of one or more model shapes (see ``report``)."""

from .report import main

raise SystemExit(main())
