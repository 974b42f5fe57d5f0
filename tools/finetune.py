#!/usr/bin/env python
"""Fine-tune a registered network on a benchmark's records as the fast MPN-COV seed's
main.py and its scripts do (spec of the seed: finetune.sh, two_stage_finetune.sh).

    # records of a fine-grained set (CUB-200-2011 here) and the authors' converted weights
    python tools/prepare_folder.py CUB_200_2011 data/cub
    python tools/convert_weights.py --model mpncov_resnet50 mpncovresnet50.pth r50.params
    # finetune.sh: batch 10, lr 1.2e-3 (classifier x5), wd 1e-4, 100 epochs, 448 px
    python tools/finetune.py --data-dir data/cub --benchmark CUB --classes 200 \\
        --pretrained r50.params --model-prefix runs/cub/r50 --gpus 0
    # two_stage_finetune.sh: VGG-16 + B-CNN, classifier only for 100 epochs, then all
    python tools/finetune.py --model vgg16 --representation BCNN --data-dir data/cub \\
        --benchmark CUB --classes 200 --pretrained vgg16.params --lr 1e-3 \\
        --classifier-factor 1000 --wd 5e-4 --epochs 200 --lr-params 200 --two-stage 100 \\
        --model-prefix runs/cub/vgg16_bcnn --gpus 0
"""
import sys

from gluon_models.training.finetune import finetune, parse_finetune_args
from gluon_models.training.logs import configure_logging


def main(argv=None):
    args = parse_finetune_args(argv)
    configure_logging(args.log_file)
    try:
        finetune(args)
    except (ValueError, FileNotFoundError) as err:
        sys.exit("finetune.py: error: %s" % err)


if __name__ == "__main__":
    main()
