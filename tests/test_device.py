"""iseat.common.device: the CPU only when asked for; a requested GPU that cannot be used fails fast with one
line naming the cause and the fix, in the library and through `iseat train` / `iseat evaluate`."""

import re
import subprocess
import sys
import time
import warnings

import pytest
import torch

from iseat.common.device import DeviceUnavailable, resolve_device

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")


def failure(requested="cuda") -> str:
    with pytest.raises(DeviceUnavailable) as info:
        resolve_device(requested)
    message = str(info.value)
    assert "\n" not in message and "fix: " in message and "runtime.device: cpu" in message
    return message


def test_cpu_when_asked_for():
    said = []
    assert resolve_device("cpu", said.append) == torch.device("cpu")
    assert said == ["device: cpu (requested)"]


def test_empty_cuda_visible_devices_names_the_cause(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES is empty" in failure("cuda")
    assert "CUDA_VISIBLE_DEVICES is empty" in failure("cuda:1")


def test_driver_too_old_names_the_driver(monkeypatch):
    def old_driver():  # what torch 2.x says on a node whose driver predates its CUDA build
        warnings.warn(
            "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040). "
            "Please update your GPU driver",
            UserWarning,
            stacklevel=2,
        )
        return False

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    message = failure()
    assert "NVIDIA driver is too old for torch's CUDA 12.8 build" in message and "found version 11040" in message


def test_cpu_only_torch_names_the_build(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in failure()


def test_device_index_past_the_visible_ones(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert "cuda:1 asked for but only 1 CUDA device(s) are visible" in failure("cuda:1")


def test_not_a_device():
    with pytest.raises(DeviceUnavailable, match="'gpu' is not a device"):
        resolve_device("gpu")


@NO_GPU
def test_auto_falls_back_and_says_why():
    said = []
    assert resolve_device("auto", said.append) == torch.device("cpu")
    assert len(said) == 1 and said[0].startswith("device: cpu (falling back: ")


@NO_GPU
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--set", "runtime.device=cuda", "data.dataset=digits", "model.arch=small_cnn", "--out", "{tmp}/run"],
        ["evaluate", "--device", "cuda", "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/aa.json"],
        [
            "analyse",
            "vulnerability",
            "--device",
            "cuda:0",
            "--checkpoint",
            "{tmp}/missing.pt",
            "--out",
            "{tmp}/av.json",
        ],
    ],
)
def test_cli_fails_fast_on_a_missing_gpu_and_writes_nothing(tmp_path, command):
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "iseat", *(part.format(tmp=tmp_path) for part in command)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - start < 60
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(r"error: device cuda(:0)?: ", lines[0]) and "fix: " in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []
