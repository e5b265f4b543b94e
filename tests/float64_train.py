"""`iseat train` in float64 (model and batches), so that one and several processes can be compared
to 1e-9: `python -m torch.distributed.run --nproc_per_node=N tests/float64_train.py --out ... --set ...`."""

import sys

import torch

from iseat.cli import main
from iseat.data import loaders


def in_float64(get):
    return lambda *args: (lambda x, *rest: (x.double(), *rest))(*get(*args))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    loaders.ArrayDataset.batch = in_float64(loaders.ArrayDataset.batch)
    loaders.TrainBatches.__getitem__ = in_float64(loaders.TrainBatches.__getitem__)
    sys.exit(main(["train", *sys.argv[1:]]))
