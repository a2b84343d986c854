"""``python -m benchmarks.peers [ops|train|all] ...``: the peer comparisons (default: ops, then train)."""
import sys

from . import compare, training


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("ops", "train", "all") else "all"
    if command == "ops":
        return compare.main(argv)
    if command == "train":
        return training.main(argv)
    quick = ["--quick"] if "--quick" in argv else []
    return max(compare.main(argv), training.main(quick))


if __name__ == "__main__":
    sys.exit(main())
