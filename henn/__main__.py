"""``python -m henn``: the same command line as the ``henn`` console script."""
from henn.cli import main

raise SystemExit(main())
