"""henn.cli.common: the argument types, the JSON line and the failure conventions every subcommand shares."""
import argparse
import json
import math

import numpy as np
import pytest

import he_core
from henn.cli import common


@pytest.mark.parametrize("parse,good,bad", [
    (common.positive_int, [("1", 1), ("42", 42)], ["0", "-3", "1.5", "x", ""]),
    (common.non_negative_int, [("0", 0), ("7", 7)], ["-1", "2.0", "seven"]),
    (common.positive_float, [("0.5", 0.5), ("1e3", 1000.0)], ["0", "-1", "nan", "inf", "x"]),
    (common.png_path, [("a.png", "a.png"), ("B.PNG", "B.PNG")], ["a.jpg", "png"]),
    (common.scheme_name, [("plain", "plain"), ("vhe", "vhe")], ["nope", ""]),
])
def test_argument_types_accept_and_refuse(parse, good, bad):
    for text, value in good:
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_scheme_params_are_key_equals_json_or_a_bare_string():
    assert common.scheme_param("poly_degree=16384") == ("poly_degree", 16384)
    assert common.scheme_param("allow_insecure=true") == ("allow_insecure", True)
    assert common.scheme_param("secret=hamming") == ("secret", "hamming")
    for bad in ("16384", "=3", "1x=2"):
        with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
            common.scheme_param(bad)


def test_the_default_scheme_is_the_secure_one_and_installed_schemes_load():
    assert common.default_scheme() == "ckks"
    assert set(common.installed_schemes()) >= {"plain", "vhe", "ckks"}
    assert not common.scheme_loads("no-such-scheme")


def test_the_json_line_is_one_compact_object_with_numpy_values(capsys):
    common.emit_json({"a": np.float64(0.5), "b": np.arange(3), "c": math.pi})
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and " " not in line.strip()
    assert json.loads(line) == {"a": 0.5, "b": [0, 1, 2], "c": math.pi}
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        common.emit_json({"x": object()})


def test_expected_failures_become_one_line_and_exit_1(capsys):
    def boom(args):
        raise he_core.EncodingError("cannot encode: bad")

    assert common.guarded(boom, "train")(argparse.Namespace()) == common.EXIT_FAILED
    assert capsys.readouterr().err == "henn train: error: cannot encode: bad\n"

    def bug(args):
        raise KeyError("a bug stays a traceback")

    with pytest.raises(KeyError):
        common.guarded(bug, "train")(argparse.Namespace())
    assert common.fail("no") == 1 and capsys.readouterr().err == "henn: error: no\n"


def test_common_options_parse():
    parser = argparse.ArgumentParser()
    common.add_common_options(parser)
    args = parser.parse_args(["--scheme", "vhe", "--seed", "3", "--json", "--save", "d", "--plot", "h.png"])
    assert (args.scheme, args.seed, args.json, args.quiet, args.save, args.plot) == ("vhe", 3, True, False, "d",
                                                                                      "h.png")
    bare = argparse.ArgumentParser()
    common.add_common_options(bare, save=False, plot=False)
    with pytest.raises(SystemExit):
        bare.parse_args(["--save", "d"])
