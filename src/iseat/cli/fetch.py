"""`iseat fetch NAME --root DATA_ROOT`: download or stage a data set into DATA_ROOT/NAME, verified by checksum."""

from __future__ import annotations

import argparse

from iseat.cli import UserError
from iseat.data.fetch import fetch
from iseat.data.pseudo_labels import PUBLISHED_COUNT
from iseat.data.registry import FETCHED

EXAMPLES = """examples:
  iseat fetch cifar10 --root data                                   # download (md5-checked)
  iseat fetch cifar10 --root data --from ~/cifar-10-python.tar.gz   # stage a copy made by hand
  iseat fetch ti500k --root data --from ~/ti_500K_pseudo_labeled.pickle
  iseat fetch ti500k --root data --from small.pickle --limit 1000 --expect-count 0
DATA_ROOT/NAME/manifest.json is written last; set data.root (data.extra for ti500k) to DATA_ROOT/NAME.
"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", choices=FETCHED, help="data set to fetch")
    parser.add_argument("--root", required=True, help="data root; the set goes to ROOT/NAME")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="stage a copy made by hand: the archive/file, or a folder holding it or its extracted files",
    )
    parser.add_argument(
        "--url", help="download from this URL instead (a mirror; for svhn a base URL; for ti500k the pickle)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="K", help="ti500k: keep only the first K samples (small test sets)"
    )
    parser.add_argument(
        "--expect-count",
        type=int,
        metavar="N",
        help="ti500k: samples the pickle must hold (default 500000, the published set; 0 accepts any)",
    )
    parser.add_argument("--sha256", help="ti500k: expected sha256 of the pickle, if known")


# the fetch's parameters (ParameterError) and the flags that set them
FLAGS = {
    "source": "--from",
    "url": "--url",
    "limit": "--limit",
    "sha256": "--sha256",
    "expected_count": "--expect-count",
}


def run(args) -> int:
    if args.name != "ti500k" and args.expect_count is not None:
        raise UserError("--expect-count applies only to ti500k")
    expected = PUBLISHED_COUNT if args.expect_count is None else args.expect_count
    print(fetch(args.name, args.root, args.source, args.url, args.limit, expected, args.sha256))
    return 0
