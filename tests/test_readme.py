"""The README's examples and commands run as written.

The Python blocks of README.md are extracted and run in a fresh interpreter, in a
temporary directory (the deploy block writes ``bundle.henn`` there). The library
example runs in the default suite (about 4 s). The estimator and deploy blocks train
an MLP on 128-bit CKKS (the digits run: about 12 minutes on one core), so they run
verbatim under ``-m slow``; the default suite runs them with ``scheme="ckks"`` replaced
by ``scheme="plain"`` (the same API, the same calls), which keeps the names and
signatures they use honest.

Every shell command of the README (its ``bash`` blocks and the commands quoted in its
prose) is listed in ``COMMANDS`` with how it is checked: run as written; run with a
quick flag appended (the full command takes minutes or hours: the flag and the reason
are stated); its ``--help`` (it needs another process, a data set or a rebuild); or not
here (an install, or the test suite itself: CI runs those, ``.ci/run``). A command the
README gains or loses fails ``test_every_readme_command_is_accounted_for``. Independently,
every option any ``henn`` command of the README uses, the synopsis included, must be one
its sub-command's ``--help`` lists.
"""
from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(language: str) -> list[str]:
    """The fenced blocks of README.md tagged ``language``, in order."""
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def _block(marker: str) -> str:
    found = [b for b in blocks("python") if marker in b]
    assert len(found) == 1, f"README.md should have one python block with {marker!r}, found {len(found)}"
    return found[0]


LIBRARY = _block('he_core.get_scheme("ckks")')
ESTIMATOR = _block("EncryptedMLPClassifier(")
DEPLOY = _block("ServerBundle.create(")


def run_python(code: str, cwd: pathlib.Path, timeout: float = 1800) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"README example failed:\n{code}\n--- stderr ---\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_python_block_is_run_here():
    assert sorted(blocks("python")) == sorted([LIBRARY, ESTIMATOR, DEPLOY])


def test_library_example_runs_as_written(tmp_path):
    out = run_python(LIBRARY, tmp_path).splitlines()
    assert len(out) == 4, out
    released, exact = (np.array(eval(line, {}), dtype=float) for line in (out[0], out[2]))  # printed arrays
    report = eval(out[1], {})  # the printed release report
    # 0.5*1 - 1.25*2 + 2*3 = 4: exact to CKKS's error; released to the flooding it reports
    assert exact.shape == (1, 1) and abs(exact[0, 0] - 4.0) < 1e-6
    assert report["flooded"] and abs(released[0, 0] - 4.0) <= 7 * report["value_sigma"] + report["grid"]
    assert "levels" in out[3] and "Capability.APPROXIMATE" in out[3]


def test_estimator_and_deploy_examples_run_on_the_plain_twin(tmp_path):
    code = (ESTIMATOR + DEPLOY).replace('scheme="ckks"', 'scheme="plain"').replace('"ckks")', '"plain")')
    assert "ckks" not in code
    run_python(code + "\nprint(clf.score(X_test, y_test))", tmp_path, timeout=600)
    assert (tmp_path / "bundle.henn").stat().st_size > 0


@pytest.mark.slow
def test_estimator_and_deploy_examples_run_as_written(tmp_path):
    out = run_python(ESTIMATOR + DEPLOY + "\nprint(clf.score(X_test, y_test))", tmp_path)
    assert float(out.splitlines()[-1]) >= 0.9
    assert (tmp_path / "bundle.henn").stat().st_size > 0


# --------------------------------------------------------------------------- commands
def shell_commands() -> list[str]:
    """Every command of the README's ``bash`` blocks: continuations joined, comments and a
    trailing ``&`` dropped, ``a && b`` split into its commands."""
    commands = []
    for body in blocks("bash"):
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            for part in line.split("&&"):
                part = part.strip().removesuffix("&").strip()
                if part:
                    commands.append(re.sub(r"\s+", " ", part))
    return commands


#: Commands quoted in the README's prose and tables (each must appear there verbatim).
INLINE = [
    'python -m pip install ".[sklearn]"',
    "python -m pytest -m slow",
    "henn train sentiment --scheme ckks --twin --json",
    "python -m pytest -m slow -s tests/henn/sklearn/test_mlp.py -k digits",
    "henn serve-keys --keys owner/jobA --listen tls://0.0.0.0:7443",
    "henn bench --peers",
    "taskset -c 0 pytest benchmarks/henn/training/test_bench_sentiment.py --benchmark-only",
    "pytest benchmarks/henn/training/test_bench_xor.py --benchmark-only",
    "pytest benchmarks/he_core/schemes/vhe -k keyswitch --benchmark-only",
    "python -m benchmarks.peers train",
    "python -m benchmarks.peers.concrete_ml --cml-python VENV/bin/python",
    "python -m benchmarks.peers.lr_time_to_accuracy --cml-python VENV/bin/python",
    "henn bench --quick",
    "python -m benchmarks.limits",
]

RUN, QUICK, HELP, COLLECT, NOT_HERE = "run", "quick", "help", "collect", "not here"
IMDB = "the full IMDB run takes an hour and needs the data set (tests/henn/cli/sentiment cover it at small sizes)"
JOB = ("a step of the multi-party job workflow on 128-bit CKKS, with placeholders for the data and a key "
       "service in another process (tests/henn/cli/sentiment/test_parties.py runs the workflow)")
CKKS_XOR = "training XOR on 128-bit CKKS takes about 7 minutes (run as written under -m slow)"
BENCH = "a benchmark run takes minutes; collecting it checks that the path and the options exist"

#: README command -> (how it is checked, the extra arguments or the reason).
COMMANDS = {
    "python -m pip install .": (NOT_HERE, "an install: CI installs the package into a fresh venv (.ci/run)"),
    "henn train xor": (HELP, CKKS_XOR + "; the command below runs the same training for one epoch"),
    'python -m pip install -e ".[test]"': (NOT_HERE, "the install CI runs (.ci/run checks the README has it)"),
    "python -m pytest": (NOT_HERE, "the test suite itself (.ci/run)"),
    "henn serve --bundle bundle.henn --listen unix:run/infer.sock": (
        HELP, "needs the bundle of the CKKS deploy example and a server process (tests/examples: 04_client_server)"),
    "henn predict --server unix:run/infer.sock --data X.csv --out Y.csv --json": (
        HELP, "needs the server above (tests/examples: 04_client_server)"),
    "henn train xor --json --plot xor.png --save xor_model/": (QUICK, "--epochs 1 --quiet", CKKS_XOR),
    "henn train xor --scheme vhe --json": (RUN, None),
    "henn train sentiment --data ../shared/data/imdb --twin --json --save sentiment_model/": (HELP, IMDB),
    "henn evaluate sentiment --model sentiment_model/ --data ROOT --split test --json": (HELP, IMDB),
    "henn train sentiment --data ROOT --init owner/init.npz": (HELP, JOB),
    "henn owner init --out owner/ident": (RUN, None),
    "henn job create --keys owner/jobA --model owner/init.npz --out to_a.henn --owner owner/ident": (HELP, JOB),
    "henn serve-keys --keys owner/jobA --listen unix:owner/run/a.sock": (HELP, JOB),
    "henn train sentiment --model to_a.henn --data ROOT --part 1/2 --out from_a.henn --keyholder "
    "unix:owner/run/a.sock --owner-key owner/ident/owner.pub": (HELP, JOB),
    "henn job create --keys owner/jobB --model from_a.henn --from-job owner/jobA --out to_b.henn "
    "--owner owner/ident": (HELP, JOB),
    "henn job close --keys owner/jobA": (HELP, JOB),
    "henn job close --keys owner/jobB --model from_b.henn --out owner/trained.npz": (HELP, JOB),
    'python -m pip install -e ".[bench,peers]"': (NOT_HERE, "an install of optional peers (TenSEAL wheels: Python 3.11)"),
    "python -m benchmarks.peers ops": (HELP, "the peer comparison takes about a minute and needs the peers extra"),
    "python csrc/build_native.py vhe": (HELP, "rebuilds the native module in place, under the running tests"),
    "HENN_NATIVE=1 python csrc/build_native.py": (HELP, "rebuilds every native module in place"),
    'python -m pytest benchmarks/ --benchmark-only -m "not slow"': (COLLECT, BENCH),
    'HENN_SANITIZE=1 python -m pip install -e ".[test]"': (NOT_HERE, "a sanitizer rebuild of the install"),
    'ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" '
    "python -m pytest": (NOT_HERE, "the test suite under the sanitizer build above"),
    "python fuzz/run_loaders.py --count 100000": (QUICK, "--count 20", "100,000 cases take about an hour"),
    "python fuzz/run_keyservice.py --count 20000": (QUICK, "--count 5", "20,000 cases take about half an hour"),
    # quoted in the prose
    'python -m pip install ".[sklearn]"': (NOT_HERE, "an install; the test extras include scikit-learn"),
    "python -m pytest -m slow": (COLLECT, "the slow suite takes hours"),
    "henn train sentiment --scheme ckks --twin --json": (HELP, IMDB),
    "python -m pytest -m slow -s tests/henn/sklearn/test_mlp.py -k digits": (COLLECT, "12 minutes of CKKS training"),
    "henn serve-keys --keys owner/jobA --listen tls://0.0.0.0:7443": (HELP, JOB),
    "henn bench --peers": (HELP, "the peer comparison takes about a minute and needs the peers extra"),
    "taskset -c 0 pytest benchmarks/henn/training/test_bench_sentiment.py --benchmark-only": (COLLECT, BENCH),
    "pytest benchmarks/henn/training/test_bench_xor.py --benchmark-only": (COLLECT, BENCH),
    "pytest benchmarks/he_core/schemes/vhe -k keyswitch --benchmark-only": (COLLECT, BENCH),
    "python -m benchmarks.peers train": (HELP, "five epochs of encrypted training beside TenSEAL: minutes"),
    "python -m benchmarks.peers.concrete_ml --cml-python VENV/bin/python": (
        HELP, "needs Concrete-ML in its own venv (VENV is a placeholder)"),
    "henn train sentiment --data ROOT --scheme vhe --cluster local --workers 2 --json": (
        HELP, "the full IMDB split on a local Dask cluster: minutes (tests/henn/distributed/test_training.py)"),
    "python -m benchmarks.peers.lr_time_to_accuracy --cml-python VENV/bin/python": (
        HELP, "128-bit training beside Concrete-ML's encrypted training: hours, Concrete-ML in its own venv"),
    "henn predict --bundle bundle.henn --cluster local --workers 2 --data X.csv --out Y.csv --json": (
        HELP, "needs a bundle and starts a Dask cluster (tests/henn/distributed and tests/henn/cli/test_serve.py)"),
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE=ca.pem DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT=me.pem "
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY=me.key henn predict --bundle bundle.henn --cluster tls://sched:8786 ...": (
        HELP, "needs a TLS Dask scheduler of the user's (tests/henn/distributed/test_cluster.py starts one)"),
    "henn bench --quick": (HELP, "every op of every scheme: about 15 s, tests/henn/cli/test_bench.py runs it smaller"),
    "python -m benchmarks.limits": (HELP, "a CPU ceiling measurement: about a minute"),
}

SLOW_AS_WRITTEN = ["henn train xor", "henn train xor --json --plot xor.png --save xor_model/"]


def _env() -> dict:
    """The environment a README reader has after the install: this interpreter's ``bin`` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("HENN_IMDB", str(ROOT.parent / "shared" / "data" / "imdb"))
    return env


def run_shell(command: str, cwd: pathlib.Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{command!r} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def _program(command: str) -> list[str]:
    """The command up to its first option or argument that is not a sub-command: what ``--help`` is asked of."""
    words = [w for w in shlex.split(command) if "=" not in w or w.startswith("-")]
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    if words[0] == "taskset":
        words = words[3:]
    if words[0] == "henn":
        head = ["henn"]
        for w in words[1:]:
            if w.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", w) or len(head) == 3:
                break
            head.append(w)
        return head
    if words[:2] == ["python", "-m"]:
        return words[:3] + [w for w in words[3:4] if w in ("ops", "train")]
    return words[:2]


def test_every_readme_command_is_accounted_for():
    text = " ".join(README.read_text().split())  # a quoted command may wrap
    missing = [c for c in INLINE if c not in text]
    assert not missing, f"commands no longer in README.md: {missing}"
    found = set(shell_commands()) | set(INLINE)
    assert found == set(COMMANDS), (f"README commands without a check: {sorted(found - set(COMMANDS))}; "
                                    f"checks without a README command: {sorted(set(COMMANDS) - found)}")
    assert set(SLOW_AS_WRITTEN) <= set(COMMANDS)


@pytest.mark.parametrize("command", [c for c, (how, *_) in COMMANDS.items() if how == RUN])
def test_command_runs_as_written(command, tmp_path):
    proc = run_shell(command, tmp_path)
    if "--json" in command:
        result = json.loads(proc.stdout.splitlines()[-1])
        assert result["task"] == "xor" and result["correct"] == 4
    if command.startswith("henn owner init"):
        assert (tmp_path / "owner" / "ident" / "owner.pub").exists()


@pytest.mark.parametrize("command", [c for c, (how, *_) in COMMANDS.items() if how == QUICK])
def test_command_runs_with_a_quick_flag(command, tmp_path):
    _, extra, _why = COMMANDS[command]
    cwd = ROOT if command.startswith("python ") else tmp_path  # scripts run from the repository root
    proc = run_shell(f"{command} {extra}", cwd)
    if "--json" in command:
        assert json.loads(proc.stdout.splitlines()[-1])["epochs"] == 1
    if "--plot" in command:
        assert (tmp_path / "xor.png").stat().st_size > 0 and (tmp_path / "xor_model").is_dir()


@functools.lru_cache(maxsize=None)
def _help(program: tuple[str, ...]) -> str:
    return run_shell(shlex.join(program) + " --help", ROOT).stdout


@pytest.mark.parametrize("command", [c for c, (how, *_) in COMMANDS.items() if how == HELP])
def test_command_answers_help(command):
    assert "usage:" in _help(tuple(_program(command)))


@pytest.mark.parametrize("command", [c for c, (how, *_) in COMMANDS.items() if how == COLLECT])
def test_pytest_command_collects(command):
    words = shlex.split(command)
    if words[0] == "taskset":
        words = words[3:]
    if words[0] == "pytest":
        words = ["python", "-m", "pytest"] + words[1:]
    proc = run_shell(shlex.join(words) + " --collect-only -q -p no:cacheprovider", ROOT, timeout=600)
    assert re.search(r"\d+ tests? collected|\d+/\d+ tests? collected", proc.stdout), proc.stdout[-500:]


def _synopsis() -> list[str]:
    """The ``henn ...`` lines of the README's command-line synopsis, continuation lines joined."""
    body = next(b for b in blocks("") if b.startswith("henn "))
    return [re.sub(r"\s+", " ", c).strip() for c in re.split(r"\n(?=henn )", body) if c.strip()]


def test_every_henn_option_in_the_readme_exists():
    commands = [c for c in COMMANDS if c.startswith("henn ")] + _synopsis()
    assert len(_synopsis()) >= 18  # one line per sub-command
    unknown = []
    for command in commands:
        words = [re.sub(r"#.*$", "", command)]
        program = tuple(_program(words[0]))
        helptext = _help(program)
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", words[0]):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helptext):
                unknown.append(f"{' '.join(program)} {option}")
    assert not unknown, f"options the README uses that the CLI does not list: {sorted(set(unknown))}"


@pytest.mark.slow
@pytest.mark.parametrize("command", SLOW_AS_WRITTEN)
def test_ckks_xor_runs_as_written(command, tmp_path):
    run_shell(command, tmp_path, timeout=3600)
