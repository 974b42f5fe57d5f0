"""The IBN-Net authors' PyTorch ImageNet recipe (their imagenet.py / train.sh) as the default of
``tools/train_imagenet.py`` for the networks of family ``ibn``: the parsed configuration, the
optimizer and schedule it makes, the iterators' augmentation, and a short run."""
import os
import re
import subprocess
import sys

import pytest

from gluon_models.data.imagenet import imagenet_aug_kwargs
from gluon_models.model_zoo import get_model
from gluon_models.training.evaluation import parse_evaluate_args
from gluon_models.training.fit import make_optimizer
from gluon_models.training.optimizers import TorchSGD
from gluon_models.training.runner import fit_config, parse_imagenet_args

from ..data.imagenet_set import write_set

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# the recipe as the authors' code states it (written here, not read from the family)
AUTHORS = dict(optimizer="torch_sgd", mom=0.9, wd=1e-4, wd_rule="all", lr=0.1,
               lr_schedule="step", lr_step_epochs=[30.0, 60.0, 90.0], lr_factor=0.1,
               num_epochs=100, batch_size=256, label_smoothing=0.0, norm="imagenet",
               mean_rgb="123.675,116.28,103.53", std_rgb="58.395,57.12,57.375",
               data_shape=224, val_resize=256)
# RandomResizedCrop(224): area 0.08-1, aspect 3/4-4/3; RandomHorizontalFlip; nothing else
AUTHORS_AUG = dict(rand_crop=0, rand_mirror=True, random_resized_crop=1, min_random_area=0.08,
                   max_random_area=1, min_aspect_ratio=0.75, max_aspect_ratio=4 / 3)


@pytest.mark.parametrize("model", ["resnet50_ibn_a", "resnet18_ibn_b", "se_resnet101_ibn_a",
                                   "densenet121_ibn_a"])
def test_family_ibn_parses_to_the_authors_recipe(model):
    args = parse_imagenet_args(["--network", model])
    assert {k: getattr(args, k) for k in AUTHORS} == AUTHORS
    aug = imagenet_aug_kwargs(args.aug_level, None, args.aug_opts)
    assert aug == AUTHORS_AUG  # no scale / aspect jitter of the seeds' levels, no colour jitter


def test_options_given_win_and_other_families_keep_the_seeds_defaults():
    args = parse_imagenet_args(["--network", "resnet50_ibn_a", "--optimizer", "nag",
                                "--num-epochs", "3", "--aug-opt", "min_random_area=0.25",
                                "--lr-step", "1,2"])
    assert (args.optimizer, args.num_epochs, args.lr_step_epochs) == ("nag", 3, [1.0, 2.0])
    assert imagenet_aug_kwargs(args.aug_level, None, args.aug_opts)["min_random_area"] == 0.25
    again = parse_imagenet_args(["--network", "resnet50_ibn_a"])  # the recipe is untouched
    assert imagenet_aug_kwargs(again.aug_level, None, again.aug_opts)["min_random_area"] == 0.08
    args = parse_imagenet_args(["--network", "igc_resnet18_l16m16"])  # no recipe declared
    assert (args.optimizer, args.num_epochs, args.aug_level, args.aug_opts) == \
        ("nag", 120, 2, [])
    # evaluate.py's parser has no training options: the recipe's others are skipped
    args = parse_evaluate_args(["--model", "resnet50_ibn_a", "--params", "x.params"])
    assert args.val_resize == 256 and args.norm == "imagenet"


def test_optimizer_and_schedule_of_the_recipe():
    args = parse_imagenet_args(["--network", "resnet18_ibn_a"])
    net = get_model("resnet18_ibn_a", classes=10)
    net.initialize()
    epoch_size = 7
    opt = make_optimizer(fit_config(args), net, 1.0 / 256, epoch_size)
    assert isinstance(opt, TorchSGD) and opt.momentum == 0.9 and opt.wd == 1e-4
    # weight decay on every parameter, IN and BN betas and the fc bias included
    names = [p.name for p in net.collect_params().values() if p.grad_req != "null"]
    assert any(n.endswith("IN_beta") for n in names) and any(n.endswith("fc_bias") for n in names)
    assert all(opt._get_wd(n) == pytest.approx(1e-4) for n in names)
    sched = opt.lr_scheduler
    for epoch, lr in ((0, 0.1), (29, 0.1), (30, 0.01), (59, 0.01), (60, 1e-3), (90, 1e-4),
                      (99, 1e-4)):
        assert sched(epoch * epoch_size + 1) == pytest.approx(lr), epoch


def test_short_run_of_the_recipe(tmp_path):
    """resnet18_ibn_a at 224 px with everything of the recipe but its size (batch 4, one
    epoch): the random resized crops, torch_sgd and the stepped lr run end to end."""
    write_set(tmp_path / "data", n_train=8, n_val=4)
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_imagenet.py"), "--network",
           "resnet18_ibn_a", "--num-classes", "5", "--data-dir", str(tmp_path / "data"),
           "--batch-size", "4", "--num-epochs", "1", "--kv-store", "local",
           "--disp-batches", "1", "--preprocess-threads", "1",
           "--log-file", str(tmp_path / "train.log")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert "optimizer='torch_sgd'" in log and "wd_rule='all'" in log
    assert "'random_resized_crop': 1" in log and "'min_random_area': 0.08" in log
    assert re.search(r"224x224 crops, aug level 1", log)
    assert "Epoch[0] Validation-accuracy=" in log


# the port's recipe as its train_*.py state it (spec of the seed: NAG, MXNet's weight-decay
# rule, MultiFactorScheduler steps, 125 epochs, aug level 2 with its own minimum scale)
PORT = dict(optimizer="nag", mom=0.9, wd=1e-4, wd_rule="weights", lr=0.1, lr_factor=0.1,
            lr_step_epochs=[30.0, 60.0, 90.0, 95.0, 115.0, 120.0], num_epochs=125,
            batch_size=256, aug_level=2, norm="raw", mean_rgb="0,0,0", std_rgb="1,1,1",
            fill_value=127)


@pytest.mark.parametrize("argv,scale,smoothing", [
    (["--network", "resnet_ibn_a", "--depth", "50"], 0.667, 0.0),
    (["--network", "resnext_ibn_a"], 0.667, 0.0),
    (["--network", "resnext50_ibn_b_mx"], 0.667, 0.0),
    (["--network", "resnext_w_d_v2", "--drop-out", "0.2"], 0.533, 0.1),
    (["--network", "resnext101_ibn_a_w_d_mx"], 0.533, 0.1)])
def test_the_port_networks_parse_to_the_ports_recipe(argv, scale, smoothing):
    args = parse_imagenet_args(argv)
    assert {k: getattr(args, k) for k in PORT} == PORT
    assert args.label_smoothing == smoothing
    aug = imagenet_aug_kwargs(args.aug_level, None, args.aug_opts)
    assert aug == dict(rand_crop=True, rand_mirror=True, min_random_scale=scale,
                       max_random_scale=1.0, max_aspect_ratio=0.25, random_h=36, random_s=50,
                       random_l=50)
    # the CIFAR networks are train_cifar.py's: no ImageNet recipe
    args = parse_imagenet_args(["--network", "resnet164_ibn_a_mx_cifar"])
    assert (args.num_epochs, args.aug_opts) == (120, [])


def test_every_recipe_names_options_of_the_parser():
    """The recipes are the families' train_defaults: options of train_imagenet.py."""
    from gluon_models.model_zoo import list_models
    from gluon_models.model_zoo.registry import seed_networks, train_defaults
    from gluon_models.training.runner import imagenet_parser
    dests = {a.dest for a in imagenet_parser()._actions}
    names = list_models(family="ibn") + list_models(family="ibn_mx") + \
        [n for n in seed_networks() if n.startswith(("resnet_ibn", "resnext_"))]
    recipes = {n: train_defaults(n) for n in names}
    assert recipes["resnet50_ibn_a"] and recipes["resnet_ibn_a"]
    for name, recipe in recipes.items():
        assert set(recipe) <= dests, (name, set(recipe) - dests)


def test_a_table_dataset_takes_the_recipe_but_not_its_imagenet_crops(tmp_path):
    """train_imagenet.py --dataset (and train_cifar.py) read a table's dataset with its own
    augmentation options: the recipe's optimisation applies, its ImageNet crops are skipped."""
    args = parse_imagenet_args(["--dataset", "imagenet64", "--network", "resnet50_ibn_a_mx",
                                "--data-dir", str(tmp_path)])
    assert (args.optimizer, args.wd_rule, args.num_epochs) == ("nag", "weights", 125)
    assert not hasattr(args, "aug_level") and not hasattr(args, "aug_opts")
