"""Presenting benchmark records: machine header, text table, JSON file, bar chart."""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
from importlib import metadata
from typing import Iterable, Sequence

import he_core

from .runner import Record

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
LIBRARIES = ("henn", "he_core", "numpy", "numba", "cffi", "tenseal", "openfhe", "Pyfhel", "sklearn")
SCHEMA_VERSION = 1


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each library, ``None`` for those missing."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
            continue
        except metadata.PackageNotFoundError:
            pass
        try:
            module = importlib.import_module(name)
        except Exception:  # a broken optional peer counts as missing
            out[name] = None
            continue
        out[name] = str(getattr(module, "__version__", "unknown"))
    return out


def header(**extra) -> dict:
    """Where and when the numbers were taken."""
    return {
        "schema": SCHEMA_VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "threads": {v: os.environ.get(v) for v in THREAD_VARS},
        "kernels": he_core.kernel_paths(),
        **extra,
    }


def format_seconds(s: float | None) -> str:
    """Seconds with a unit that keeps three significant digits readable."""
    if s is None:
        return "-"
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= factor:
            return f"{s / factor:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def table(records: Sequence[Record], *, show_skipped: bool = False) -> str:
    """A fixed-width table: scheme, op, size, median, min, ops/s (errors and skips at the end)."""
    head = ("scheme", "op", "size", "median", "min", "ops/s")
    rows = [(r.scheme, r.op, str(r.size), format_seconds(r.median_s), format_seconds(r.min_s),
             f"{r.ops_per_s:,.0f}") for r in records if r.status == "ok"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    align = ["<", "<", ">", ">", ">", ">"]
    line = lambda cells: "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths))  # noqa: E731
    out = [line(head), line(tuple("-" * w for w in widths))] + [line(row) for row in rows]
    for r in records:
        if r.status == "error" or (show_skipped and r.status == "skipped"):
            out.append(f"{r.status.upper()}: {r.scheme} {r.op} size {r.size}: {r.reason}")
    return "\n".join(out)


def to_json(records: Sequence[Record], **extra) -> dict:
    """The JSON document: a header and one record per (scheme, op, size)."""
    return {"header": header(**extra), "records": [r.to_dict() for r in records]}


def write_json(path: str, records: Sequence[Record], **extra) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_json(records, **extra), fh, indent=2)
        fh.write("\n")


def plot(path: str, records: Sequence[Record]) -> None:
    """Grouped bar chart of median times per op (log scale), one bar per (scheme, size).

    Raises:
        ValueError: no timed record to draw.
    """
    import matplotlib  # here, not at the top: pyplot takes ~0.7 s to import and only drawing needs it

    matplotlib.use("Agg")  # files only, no display; must precede the pyplot import
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.status == "ok"]
    if not ok:
        raise ValueError("cannot plot: no timed results")
    ops = list(dict.fromkeys(r.op for r in ok))
    series = list(dict.fromkeys((r.scheme, r.size) for r in ok))
    by_key = {(r.scheme, r.size, r.op): r.median_s for r in ok}
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(ops) + 2), 4.5))
    for i, (scheme, size) in enumerate(series):
        xs = [j + i * width for j, op in enumerate(ops) if (scheme, size, op) in by_key]
        ys = [by_key[(scheme, size, op)] for op in ops if (scheme, size, op) in by_key]
        ax.bar(xs, ys, width=width, label=f"{scheme} size {size}")
    ax.set_yscale("log")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ops))])
    ax.set_xticklabels(ops, rotation=30, ha="right")
    ax.set_ylabel("median seconds per call (log)")
    ax.set_title("henn bench")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
