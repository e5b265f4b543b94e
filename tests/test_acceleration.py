"""The opt-in speed options keep the training step working, and the maths unchanged where they should."""

from __future__ import annotations

import copy

import pytest
import torch

from iseat.methods.models import SmallCNN
from iseat.methods.presets import MethodSchedule, training_step
from iseat.methods.training_attack import PGD
from iseat.training import acceleration

ISEAT = MethodSchedule.from_config({"name": "iseat"}).at_stage(1, PGD(8 / 255, 2 / 255, 2))


pytestmark = pytest.mark.usefixtures("one_thread")


def model_and_batches(dtype=torch.float64, n=2, batch=8):
    torch.manual_seed(0)
    model = SmallCNN(10, width=8).to(dtype)
    g = torch.Generator().manual_seed(1)
    data = [
        (torch.rand(batch, 3, 32, 32, generator=g, dtype=dtype), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n)
    ]
    return model, data


def train(model, data, runtime=None, one_autocast_context=False):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    results = []
    if one_autocast_context:
        with acceleration.autocast(runtime, "cpu"):
            for x, y in data:
                results.append(training_step(model, optimizer, acceleration.to_device(x, runtime, "cpu"), y, ISEAT))
    else:
        for x, y in data:
            with acceleration.autocast(runtime, "cpu"):
                results.append(training_step(model, optimizer, acceleration.to_device(x, runtime, "cpu"), y, ISEAT))
    return results


def max_diff(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_channels_last_gives_the_same_update():
    model, data = model_and_batches()
    plain = copy.deepcopy(model)
    train(plain, data)
    runtime = {"channels_last": True}
    fast = acceleration.prepare_model(copy.deepcopy(model), runtime, "cpu")
    assert fast.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert acceleration.to_device(data[0][0], runtime, "cpu").is_contiguous(memory_format=torch.channels_last)
    train(fast, data, runtime)
    assert max_diff(plain, fast) <= 1e-10


def test_compiled_model_gives_the_same_update():
    """AWP's functional_call goes through the compiled module (the aot_eager backend keeps the test fast;
    `prepare_model` uses the default inductor backend)."""
    model, data = model_and_batches()
    plain = copy.deepcopy(model)
    train(plain, data)
    compiled = copy.deepcopy(model)
    compiled.compile(backend="aot_eager")
    train(compiled, data)
    assert max_diff(plain, compiled) <= 1e-10
    assert all(p.requires_grad for p in compiled.parameters())  # unfrozen after the attack


def test_prepare_model_compiles_in_place_and_keeps_names():
    model, _ = model_and_batches(torch.float32)
    names = list(model.state_dict())
    prepared = acceleration.prepare_model(model, {"compile": True}, "cpu")
    assert prepared is model and list(prepared.state_dict()) == names
    assert acceleration.describe({"compile": True})["compile"] is True


def test_bf16_autocast_step_runs_and_stays_close_to_fp32():
    model, data = model_and_batches(torch.float32, n=1, batch=16)
    fp32 = train(copy.deepcopy(model), data)[0]
    bf16_model = copy.deepcopy(model)
    bf16 = train(bf16_model, data, {"precision": "bf16"})[0]
    assert bf16.clean_loss.dtype == torch.float32 and bf16.adv_loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16_model.parameters())
    assert bf16.loss == pytest.approx(fp32.loss, rel=0.05)
    assert not torch.equal(bf16.clean_loss, fp32.clean_loss)  # autocast really was on


def test_autocast_cache_is_dropped_after_each_update():
    """Many steps inside one autocast context give what one context per step gives: the step clears
    autocast's cached bf16 weights after changing the weights in place."""
    model, data = model_and_batches(torch.float32, n=3)
    runtime = {"precision": "bf16"}
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    train(a, data, runtime)
    train(b, data, runtime, one_autocast_context=True)
    assert max_diff(a, b) == 0


def test_options_are_validated_and_described():
    assert acceleration.describe(None) == {
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "tf32": False,
        "pin_memory": False,
        "memory_lean": False,
        "autocast_dtype": None,
        "compile_scope": None,
        "numerics": "fp32",
    }
    assert acceleration.describe({"tf32": True})["numerics"] == "changed (tf32)"
    assert acceleration.describe({"precision": "bf16"})["autocast_dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="runtime.precision"):
        acceleration.options({"precision": "fp16"})
    assert not acceleration.pin_memory({"pin_memory": True}, "cpu")


def test_used_options_name_what_a_run_changed():
    assert acceleration.used_options(acceleration.describe(None)) == []
    used = acceleration.used_options(
        acceleration.describe(
            {
                "precision": "bf16",
                "channels_last": True,
                "tf32": True,
                "compile": True,
                "pin_memory": True,
                "memory_lean": True,
            }
        )
    )
    assert used == ["bf16 autocast", "channels_last", "torch.compile", "TF32", "pinned memory", "memory-lean"]
    # summaries written before an option existed name nothing for it
    assert acceleration.used_options({"precision": "fp32", "compile": False}) == []


def test_speed_and_memory_options_are_train_config_keys():
    from iseat.training.config import ConfigError, load_config

    cfg = load_config(None, ["runtime.memory_lean=true", "runtime.tf32=true"])
    assert acceleration.used_options(acceleration.describe(cfg["runtime"])) == ["TF32", "memory-lean"]
    with pytest.raises(ConfigError, match="runtime.memory_lean"):
        load_config(None, ["runtime.memory_lean=1"])


@pytest.mark.slow
def test_training_loop_passes_memory_lean_to_the_step_and_records_it(tmp_path, monkeypatch):
    import iseat.training.loop
    from iseat.training.config import load_config

    seen = []
    real_step = iseat.training.loop.training_step

    def recording_step(*args):
        seen.append(args[-1])
        return real_step(*args)

    monkeypatch.setattr(iseat.training.loop, "training_step", recording_step)
    cfg = load_config(
        None,
        [
            "data.dataset=digits",
            "data.num_workers=0",
            "data.validation_size=100",
            "model.arch=small_cnn",
            "training.epochs=1",
            "training.lr_milestones=[]",
            "training.batch_size=256",
            "attack.steps=1",
            "evaluation.max_samples=16",
            "evaluation.pgd_steps=1",
            "runtime.device=cpu",
            "runtime.progress=false",
            "runtime.av_log=false",
            "runtime.memory_lean=true",
        ],
    )
    summary = iseat.training.loop.train(cfg, tmp_path / "run", say=lambda *_: None)
    assert seen and all(flag is True for flag in seen)
    assert summary["acceleration"]["memory_lean"] is True
