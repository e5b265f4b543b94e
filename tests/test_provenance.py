"""Run provenance records the versions a result was made with, as installed (requirements.lock)."""

from importlib import metadata

import torch

from iseat.common.provenance import provenance


def test_versions_are_the_installed_ones():
    versions = provenance(device="cpu", seed=3)["versions"]
    for name in ("torch", "torchvision", "numpy", "h5py", "pyautoattack", "scikit-learn", "PyYAML"):
        assert versions[name] == metadata.version(name)
    assert versions["torch_cuda"] == torch.version.cuda and versions["python"].count(".") == 2


def test_placement_records_the_gpus_and_slurm_job_a_process_ran_in(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    placement = provenance()["placement"]
    assert placement["CUDA_VISIBLE_DEVICES"] == "1" and placement["SLURM_JOB_ID"] == "42"
    assert "WORLD_SIZE" not in placement
