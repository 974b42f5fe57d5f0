"""Impossible command-line values are usage errors (usage line, a message naming the flag,
exit status 2) in every tool that shares the argument groups, instead of a ZeroDivisionError
(--batch-size 0), std::bad_alloc (-4), a run that trains to NaN (--lr nan) or a traceback from
the builder (--model-opt foo=bar)."""
import argparse
import os
import subprocess
import sys

import pytest

from gluon_models.training.evaluation import parse_evaluate_args
from gluon_models.training.finetune import parse_finetune_args
from gluon_models.training.runner import parse_cifar_args, parse_imagenet_args
from gluon_models.utils import argtypes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BAD = [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--val-batch-size", "0"], "--val-batch-size"),
    (["--preprocess-threads", "0"], "--preprocess-threads"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--wd", "nan"], "--wd"),
    (["--num-epochs", "0"], "--num-epochs"),
    (["--num-epoches", "-2"], "--num-epochs"),   # the seeds' spelling, same check
    (["--mom", "-1"], "--mom"),
    (["--mom", "1.5"], "--mom"),
    (["--lr-factor", "0"], "--lr-factor"),
    (["--lr-step-epochs", "30,nan"], "--lr-step-epochs"),
    (["--disp-batches", "0"], "--disp-batches"),
    (["--classes", "0"], "--classes"),
    (["--seed", "-1"], "--seed"),
    (["--model-opt", "foo=bar"], "foo"),
]


def _usage_error(parse, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("usage:"), err
    return err


@pytest.mark.parametrize("argv,flag", BAD)
def test_train_cifar_refuses_impossible_values(argv, flag, capsys):
    err = _usage_error(parse_cifar_args, ["--data-dir", "unused"] + argv, capsys)
    assert flag in err.splitlines()[-1]


@pytest.mark.parametrize("argv,flag", BAD + [
    (["--data-shape", "0"], "--data-shape"),
    (["--fill-value", "256"], "--fill-value"),
])
def test_train_imagenet_refuses_impossible_values(argv, flag, capsys):
    err = _usage_error(parse_imagenet_args, ["--data-dir", "unused"] + argv, capsys)
    assert flag in err.splitlines()[-1]


@pytest.mark.parametrize("argv,flag", BAD + [
    (["--data-shape", "0"], "--data-shape"),
    (["--epochs", "0"], "--epochs"),
    (["--momentum", "1"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--classifier-factor", "0"], "--classifier-factor"),
    (["--lr-params", "nan"], "--lr-params"),
    (["--freeze", "-1"], "--freeze"),
    (["--two-stage", "0"], "--two-stage"),
])
def test_finetune_refuses_impossible_values(argv, flag, capsys):
    err = _usage_error(parse_finetune_args, ["--data-dir", "unused", "--benchmark", "CUB"]
                       + argv, capsys)
    assert flag in err.splitlines()[-1]


def test_model_prefix_must_be_a_file_prefix(tmp_path, capsys):
    for prefix in (str(tmp_path) + os.sep, str(tmp_path)):
        err = _usage_error(parse_cifar_args, ["--model-prefix", prefix], capsys)
        assert "--model-prefix" in err and "DIR/NAME" in err
    err = _usage_error(parse_cifar_args, ["--load-prefix", "ckpt/"], capsys)
    assert "--load-prefix" in err
    args = parse_cifar_args(["--model-prefix", str(tmp_path / "net")])
    assert args.model_prefix == str(tmp_path / "net")


def test_model_opt_key_lists_the_model_options(capsys):
    err = _usage_error(parse_cifar_args, ["--model", "igc_plain_cifar", "--model-opt",
                                          "foo=bar"], capsys)
    assert "--model-opt foo" in err and "depth" in err and "secondary" in err
    # a seed --network alias accepts its target's options, and only those
    err = _usage_error(parse_cifar_args, ["--network", "plain_igc", "--model-opt",
                                          "foo=1"], capsys)
    assert "depth" in err
    args = parse_cifar_args(["--network", "plain_igc", "--model-opt", "depth=8"])
    assert args.model_opts == [("depth", 8)]


def test_unknown_model_is_a_usage_error(capsys):
    err = _usage_error(parse_cifar_args, ["--model", "resnet_does_not_exist"], capsys)
    assert "unknown model" in err
    err = _usage_error(parse_evaluate_args, ["--model", "igc_resnet18_l16m16", "--model-opt",
                                             "foo=1", "--params", "x.params"], capsys)
    assert "--model-opt foo" in err


def test_good_values_still_parse():
    args = parse_cifar_args(["--batch-size", "8", "--lr", "0", "--mom", "0", "--wd", "0",
                             "--num-epochs", "1", "--load-epoch", "0", "--top-k", "0",
                             "--lr-step-epochs", "1,2.5"])
    assert (args.batch_size, args.lr, args.mom, args.num_epochs) == (8, 0.0, 0.0, 1)
    assert args.lr_step_epochs == [1.0, 2.5]


@pytest.mark.parametrize("fn,good,bad", [
    (argtypes.positive_int, ["1", "64"], ["0", "-4", "2.5", "x", ""]),
    (argtypes.non_negative_int, ["0", "3"], ["-1", "nan"]),
    (argtypes.finite_float, ["-1.5", "0", "1e3"], ["nan", "inf", "-inf", "x"]),
    (argtypes.positive_float, ["1e-9"], ["0", "-1", "inf"]),
    (argtypes.non_negative_float, ["0", "0.1"], ["-0.1", "nan"]),
    (argtypes.fraction, ["0", "0.99"], ["1", "-0.5", "nan"]),
    (argtypes.bounded_int(0, 255), ["0", "255"], ["256", "-1"]),
])
def test_argument_types(fn, good, bad):
    for text in good:
        fn(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


@pytest.mark.parametrize("tool,argv", [
    ("train_cifar.py", ["--batch-size", "0"]),
    ("train_imagenet.py", ["--lr", "nan"]),
    ("summary.py", ["--model", "igc_plain_cifar", "--model-opt", "foo=bar"]),
])
def test_tools_exit_with_usage_errors(tool, argv):
    run = subprocess.run([sys.executable, os.path.join(REPO, "tools", tool)] + argv,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.startswith("usage:") and "Traceback" not in run.stderr
