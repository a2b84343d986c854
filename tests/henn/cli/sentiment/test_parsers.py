"""henn.cli.sentiment.parsers: ``henn train sentiment`` and ``henn evaluate sentiment`` parse to the documented
defaults and handlers, and refuse bad values as usage errors."""
from __future__ import annotations

import argparse

import pytest

from henn.cli.sentiment import parsers
from henn.cli.sentiment.evaluate import run_evaluate
from henn.cli.sentiment.train import run_train
from henn.tasks.sentiment import SentimentConfig


@pytest.fixture
def parse():
    root = argparse.ArgumentParser(prog="henn")
    commands = root.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train").add_subparsers(dest="task", required=True)
    evaluate = commands.add_parser("evaluate").add_subparsers(dest="task", required=True)
    parsers.add_train_parser(train)
    parsers.add_evaluate_parser(evaluate)
    return root.parse_args


def test_train_defaults_are_the_configs(parse):
    args = parse(["train", "sentiment", "--data", "d"])
    cfg = SentimentConfig()
    assert args.func is run_train and args.data == "d"
    assert (args.hidden, args.lr, args.interval, args.degree) == (cfg.hidden, cfg.lr, cfg.interval, cfg.degree)
    assert args.epochs == 1 and args.validation == 5000 and args.split_seed == 0 and args.limit is None


def test_evaluate_defaults(parse):
    args = parse(["evaluate", "sentiment", "--data", "d", "--model", "m"])
    assert args.func is run_evaluate and args.split == "test" and args.keys is None and not args.allow_insecure
    assert parse(["evaluate", "sentiment", "--data", "d", "--model", "m", "--split", "validation", "--limit",
                  "7"]).limit == 7


@pytest.mark.parametrize("argv", [
    ["train", "sentiment", "--data", "d", "--hidden", "0"],
    ["train", "sentiment", "--data", "d", "--epochs", "-2"],
    ["train", "sentiment", "--data", "d", "--lr", "0"],
    ["train", "sentiment", "--data", "d", "--validation", "-1"],
    ["evaluate", "sentiment", "--data", "d"],
    ["evaluate", "sentiment", "--data", "d", "--model", "m", "--split", "dev"],
    ["evaluate", "sentiment", "--data", "d", "--model", "m", "--limit", "0"],
])
def test_bad_values_are_usage_errors(parse, argv):
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
