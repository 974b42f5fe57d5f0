#!/usr/bin/env python
"""Train a network of the registry on ImageNet-style RecordIO (`.rec` + `.idx`, by default
DIR/train.rec and DIR/val.rec as tools/prepare_folder.py writes them) with the Module trainer.
The seeds' options are accepted, e.g. the FBN ImageNet command's options:

    python tools/train_imagenet.py --network igc_resnet18_l16m16 --data-dir DIR \\
        --train-rec train_480_q90.rec --val-rec val_256_q90.rec --aug-level 2 \\
        --batch-size 256 --gpus 0,1,2,3 --lr 0.1 --lr-step 30,60,90 --num-epoches 120 \\
        --optimizer nag --model-prefix model/igc_l16m16

the FBN ResNet-34 command (the FBN networks default to `--norm fbn`, mean subtraction only):

    python tools/train_imagenet.py --network resnet-fmconv --depth 34 --fmconv-factor 50 \\
        --fmconv-drop 0.5 --fmconv-slowstart 1 --lr 0.1 --lr-step 60,75,90 --num-epoches 120 \\
        --batch-size 256 --clip-gradient 10 --data-dir DIR --train-rec train_480_q90.rec \\
        --val-rec val_256_q90.rec --aug-level 2 --model-prefix model/resnet34_fbn

the IBN-Net authors' networks (family `ibn`), whose PyTorch recipe is their default (SGD in
PyTorch's form, lr 0.1 x 0.1 at 30/60/90, 100 epochs, random resized crops; see README):

    python tools/train_imagenet.py --network resnet50_ibn_a --data-dir DIR --gpus 0,1,2,3

the GM-SOP authors' downsampled ImageNet (records of tools/prepare_imagenet64.py; `--dataset`
reads a dataset of the table with its own presets instead of ImageNet-style crops; the GM-SOP
networks default to their authors' schedule, here batch 256, SGD, lr 0.1 divided by 10 after
epochs 40, 50, 55, 60 epochs):

    python tools/train_imagenet.py --dataset imagenet64 --data-dir DIR --mean-rgb R,G,B \\
        --network gmsop16_8_resnet18_imagenet64

and the IBN seed's restart `--model-load-epoch 50 --retrain --lr 0.001` (with a new
--model-prefix and --model-load-prefix the old one). Distributed: start it with
tools/launch.py and `--kv-store dist_sync`.
"""
import sys

from gluon_models.training.logs import configure_logging
from gluon_models.training.runner import parse_imagenet_args, train_imagenet


def main(argv=None):
    try:
        train_imagenet(parse_imagenet_args(argv), setup_logging=configure_logging)
    except (ValueError, FileNotFoundError) as err:
        sys.exit("train_imagenet.py: error: %s" % err)


if __name__ == "__main__":
    main()
