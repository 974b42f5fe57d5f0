#!/usr/bin/env python
"""The README model table: every registered model's parameters and multiply-adds next to the
published figures (gluon_models/model_zoo/reference.py), as Markdown between marker lines.

Prints the table; `--output FILE` writes it (replacing the marked block of an existing file);
`--check FILE` exits with status 1 when FILE's table differs from the generated one.
"""
import argparse
import sys

from gluon_models import list_models
from gluon_models.utils.model_table import check_model_table, model_table, write_model_table


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--output", metavar="FILE", help="write the table into FILE")
    action.add_argument("--check", metavar="FILE", help="compare FILE's table, exit 1 if stale")
    parser.add_argument("--filter", default="*",
                        help="only the models whose names match this fnmatch pattern")
    args = parser.parse_args()
    table = model_table(list_models(args.filter))
    if args.check:
        ok, message = check_model_table(args.check, table)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    if args.output:
        write_model_table(args.output, table)
        print("wrote %s" % args.output)
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
