#!/usr/bin/env python
"""Launch distributed training (MXNet parameter server, kv-store dist_sync / dist_device_sync /
dist_async): mxnet's own tools/launch.py with the fixes it needs on Python 3.11 and on one
machine (loopback). For example, 1 server and 2 workers on this machine:

    python tools/launch.py -n 2 -s 1 python tools/train_cifar.py --kv-store dist_sync ...

See --help for a cluster over ssh.
"""
import logging
import sys

from gluon_models.training.distributed import launch


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        sys.exit(launch(argv))
    except (ValueError, RuntimeError) as err:
        sys.exit("launch.py: error: %s" % err)


if __name__ == "__main__":
    main()
