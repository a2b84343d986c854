"""``python -m benchmarks.peers [ops|train|all] ...``: the peer comparisons (default: ops, then train)."""
from __future__ import annotations

import sys
from typing import Sequence

from . import compare, training


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the op comparison, the training comparison, or both (``--quick`` is passed on)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("ops", "train", "all") else "all"
    if command == "ops":
        return compare.main(argv)
    if command == "train":
        return training.main(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    quick = ["--quick"] if "--quick" in argv else []
    status = compare.main(argv)
    print()
    return max(status, training.main(quick))
