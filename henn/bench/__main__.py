"""``python -m henn.bench`` runs the same command as ``henn bench``."""
import sys

from henn.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
