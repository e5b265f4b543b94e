"""Several training steps of each method on fixed global batches, in one process or as one rank of
a torchrun launch (`python -m torch.distributed.run --nproc_per_node=N tests/distributed_steps.py OUT`).
Rank 0 saves each method's parameters, BatchNorm buffers and per-sample AVs of the global batch."""

import sys

import torch
import torch.distributed as dist

from iseat.common import distributed
from iseat.methods.models import SmallCNN
from iseat.methods.presets import MethodSchedule
from iseat.methods.training_attack import PGD

# (method section, lr stage, epoch of 200): ISEAT's smoothing is on from stage 1, GAIRAT reweights late.
METHODS = {
    "at": ({"name": "at"}, 0, 0, True),
    "at_awp": ({"name": "at_awp"}, 0, 0, False),
    "iseat": ({"name": "iseat"}, 1, 150, False),
    "iseat_eq9": ({"name": "at_eq9"}, 0, 0, False),
    "trades": ({"name": "trades"}, 0, 0, False),
    "mart": ({"name": "mart"}, 0, 0, False),
    "gairat": ({"name": "gairat"}, 0, 150, True),
}
BATCH, STEPS = 7, 3  # 7: uneven slices on 2 and 3 processes


def batches(steps=STEPS, m=BATCH):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.rand(m, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (m,), generator=g))
        for _ in range(steps)
    ]


def run_method(name) -> dict:
    section, stage, epoch, random_start = METHODS[name]
    torch.manual_seed(0)
    model = distributed.global_batch_norm(SmallCNN(width=4).double())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    method = MethodSchedule.from_config(section).at_stage(
        stage, PGD(8 / 255, 2 / 255, 3, random_start), epoch=epoch, epochs=200
    )
    avs, losses = [], []
    for x, y in batches():
        part = distributed.rank_slice(len(y))
        result = method.step(model, optimizer, x[part], y[part])
        avs.append(distributed.gather(result.av))
        losses.append(result.loss)
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "av": torch.stack(avs),
        "loss": losses,
    }


def main(out):
    dist.init_process_group("gloo")
    results = {name: run_method(name) for name in METHODS}
    if distributed.rank() == 0:
        torch.save(results, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    main(sys.argv[1])
