#!/usr/bin/env python
"""Image folders to RecordIO, a drop-in for MXNet's tools/im2rec.py.

  im2rec.py --list --recursive PREFIX ROOT     write PREFIX.lst (one label per sub-folder)
  im2rec.py [--resize N --quality Q ...] PREFIX ROOT
                                               write <name>.rec/.idx for every PREFIX*.lst
  im2rec.py LST ROOT OUTPUT.rec [key=value ...]
                                               the C++ im2rec's form (resize=480 quality=90)

Unreadable images are skipped and listed in <name>.skipped (--strict: an error); a killed
conversion continues with --resume. See gluon_models/data/folder.py.
"""
import logging
import sys

from gluon_models.data import DataFormatError
from gluon_models.data.folder import parse_im2rec_args, run_im2rec


def main(argv=None):
    args = parse_im2rec_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(message)s")
    logging.info("arguments: %s", vars(args))
    try:
        run_im2rec(args)
    except (DataFormatError, FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit("error: %s" % e)
    except KeyboardInterrupt:
        sys.exit("interrupted (run again with --resume to continue)")


if __name__ == "__main__":
    main()
