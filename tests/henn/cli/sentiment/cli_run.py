"""What the ``henn train|evaluate sentiment`` tests share: small settings, running the CLI in process, its JSON."""
from __future__ import annotations

import json

from henn.cli import main

TRAIN = ["--hidden", "4", "--validation", "60", "--min-count", "3", "--polarity-cutoff", "0.3",
         "--lr", "0.02", "--interval", "8", "--init-scale", "0.5", "--monitor-every", "100", "--seed", "3"]


def run(capsys, *argv):
    """``henn ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_summary(out):
    """The JSON summary a ``--json`` run prints last."""
    return json.loads(out.strip().splitlines()[-1])
