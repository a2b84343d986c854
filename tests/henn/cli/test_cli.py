"""henn.cli: the ``henn`` dispatcher (its commands, optional ones skipped cleanly, ``python -m henn``, the console
script) and ``henn --threads N``, which sets the native kernels' threads for the command."""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import henn.cli as cli
from he_core import threads
from henn.cli import build_parser, main

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_threads_option_sets_the_kernels_threads(capsys):
    before = threads.get_threads()
    try:
        assert main(["--threads", "3", "train", "xor", "--scheme", "vhe", "--epochs", "2", "--seed", "1"]) == 0
        assert threads.get_threads() == 3
    finally:
        threads.set_threads(before)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_usage_errors(capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["--threads", bad, "train", "xor"])
    assert exc.value.code == 2
    assert "cannot use --threads=" in capsys.readouterr().err


def commands(parser) -> set[str]:
    """The parser's top-level sub-commands."""
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def test_dispatcher_lists_train_and_optional_commands():
    parser = build_parser()
    help_text = commands(parser)
    assert "train" in help_text
    for module, command in (("sentiment", "evaluate"), ("bench", "bench"), ("lifecycle", "keygen")):
        base = ROOT / "henn" / "cli" / module
        present = base.with_suffix(".py").exists() or (base / "__init__.py").exists()  # a module or a package
        assert present and command in help_text, module


def test_an_optional_command_that_is_missing_or_broken_is_skipped(monkeypatch, capsys):
    real = importlib.import_module

    def fake(name, *args):
        if name == "henn.cli.sentiment":
            raise ModuleNotFoundError("No module named 'henn.cli.sentiment'", name="henn.cli.sentiment")
        if name == "henn.cli.bench":
            raise RuntimeError("a bug at import")
        if name == "henn.cli.lifecycle":
            raise ModuleNotFoundError("No module named 'cryptography'", name="cryptography")
        return real(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    names = commands(build_parser())
    err = capsys.readouterr().err
    assert not {"evaluate", "bench", "keygen"} & names
    assert {"train", "serve"} <= names  # the other commands keep working
    assert "skipping the sentiment" not in err  # not installed: silent
    assert "skipping the bench commands: RuntimeError: a bug at import" in err
    assert "skipping the lifecycle commands: No module named 'cryptography'" in err


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_dash_m_henn():
    proc = subprocess.run([sys.executable, "-m", "henn", "train", "xor", "--scheme", "plain", "--epochs", "3",
                           "--json", "--quiet"], capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["epochs"] == 3
    bad = subprocess.run([sys.executable, "-m", "henn", "train", "xor", "--epochs", "x"], capture_output=True,
                         text=True, env=_subprocess_env(), timeout=120)
    assert bad.returncode == 2 and "usage: henn" in bad.stderr


def test_console_script():
    exe = shutil.which("henn")
    if exe is None:
        pytest.skip("the henn console script is not installed")
    proc = subprocess.run([exe, "train", "xor", "--scheme", "plain", "--epochs", "2", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd="/")
    if "No module named 'henn'" in proc.stderr:
        pytest.skip("the editable install predates the henn package: re-run `pip install -e .`")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["task"] == "xor"
