#!/usr/bin/env python
"""Top-1/top-5 accuracy of a trained classifier on ImageNet-style records (.rec + .idx), with
one centre crop or ten crops (corners + centre and their mirrors, softmax averaged):

    python tools/evaluate.py --checkpoint model/igc_l16m16 --epoch 95 --data-dir DIR \\
        --val-rec val_256_q90.rec --crops 10
    python tools/evaluate.py --export export/net --data-dir DIR
    python tools/evaluate.py --model resnet18_w64 --params net.params --data-dir DIR

Every image counts once (the last partial batch included).
"""
import logging
import sys

from gluon_models.training.evaluation import parse_evaluate_args, run_evaluation


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    try:
        r = run_evaluation(parse_evaluate_args(argv))
    except (ValueError, FileNotFoundError) as err:
        sys.exit("evaluate.py: error: %s" % err)
    k = next(key for key in r if key.startswith("top_k_accuracy"))
    print("%d images, %d crop(s) of %d: top-1 accuracy %.4f (error %.2f%%), top-%s accuracy "
          "%.4f (error %.2f%%), cross-entropy %.4f"
          % (r["samples"], r["crops"], r["data_shape"], r["accuracy"], 100 * (1 - r["accuracy"]),
             k.rsplit("_", 1)[1], r[k], 100 * (1 - r[k]), r["cross-entropy"]))


if __name__ == "__main__":
    main()
