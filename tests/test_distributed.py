"""Data-parallel steps on the CPU (gloo, real processes): 2 and 3 processes give the parameters,
BatchNorm buffers, AV log and loss of one process on the same global batches."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iseat.common import distributed

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import distributed_steps  # noqa: E402


@pytest.fixture(scope="module")
def single():
    torch.set_default_dtype(torch.float64)
    try:
        return {name: distributed_steps.run_method(name) for name in distributed_steps.METHODS}
    finally:
        torch.set_default_dtype(torch.float32)


def launch(n, out, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        str(HERE / "distributed_steps.py"),
        str(out),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_steps_equal_one_process(single, tmp_path, n):
    done = launch(n, tmp_path / "out.pt")
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = torch.load(tmp_path / "out.pt")
    for name, expected in single.items():
        got = parallel[name]
        for key, value in expected["state"].items():
            assert torch.allclose(got["state"][key].double(), value.double(), atol=1e-9, rtol=0), (name, key)
        assert torch.allclose(got["av"], expected["av"], atol=1e-9, rtol=0), name
        assert got["loss"] == pytest.approx(expected["loss"], abs=1e-9), name


def test_one_process_helpers_are_the_identity():
    x = torch.arange(5.0)
    assert distributed.world_size() == 1 and distributed.rank_slice(5) == slice(0, 5)
    assert distributed.gather(x) is x and distributed.part_of_mean(x, 5) is x
    assert distributed.bounds(7, 3) == [0, 2, 4, 7]
