"""Run provenance records the versions a result was made with, as installed (requirements.lock)."""

from importlib import metadata

import torch

from iseat.common.provenance import provenance


def test_versions_are_the_installed_ones():
    versions = provenance(device="cpu", seed=3)["versions"]
    for name in ("torch", "torchvision", "numpy", "h5py", "pyautoattack", "scikit-learn", "PyYAML"):
        assert versions[name] == metadata.version(name)
    assert versions["torch_cuda"] == torch.version.cuda and versions["python"].count(".") == 2
