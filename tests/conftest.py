"""Fixtures shared by the test modules."""

import os
import subprocess

import pytest
import torch

from iseat.cli import main

# One torch thread per test process (and per `iseat` or Python subprocess a test starts), unless
# OMP_NUM_THREADS says otherwise: the tests' models are small, and scripts/test.sh runs three sessions side
# by side on the machine's cores, where torch's default of a thread per core oversubscribes them (a
# three-epoch training takes 4x the CPU time on two threads there). Results do not depend on it, and
# Snakemake gives each job of a workflow test its own `threads` anyway.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def torch_threads():
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="module")
def one_thread():
    """Small models are fastest on one thread, and their results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def in_process(capsys):
    """`iseat ARGS` through the command line's own entry point in this process (no torch import per case):
    its exit status and stderr; the global settings a refused resume may have touched are restored."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    rng = torch.get_rng_state()

    def run(*args):
        capsys.readouterr()
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, status, captured.out, captured.err)

    yield run
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call is slow the first time
        torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
