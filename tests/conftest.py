"""Fixtures shared by the test modules."""

import subprocess

import pytest
import torch

from iseat.cli import main


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
