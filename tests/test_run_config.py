"""The workflow's run-config builder (iseat.workflow.run_config) for every setting of config/config.yaml and
config/demo.yaml: the expected train values are written out here from the configs' and the paper's
numbers (model, schedule, budget, augmentation, lambda/gamma, warm-up), not recomputed by merging."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from iseat.training.config import DEFAULTS, apply_override, deep_merge, validate
from iseat.workflow.run_config import RunConfigs, lambda_schedule, set_args
from iseat.workflow.schema import validate as validate_workflow

ROOT = Path(__file__).resolve().parents[1]


def workflow_config(name: str) -> dict:
    """A config as the workflow sees it: the method catalog merged in, validated, defaults filled in."""
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    config["methods"] = {
        **yaml.safe_load((ROOT / "workflow/methods.yaml").read_text()),
        **(config.get("methods") or {}),
    }
    validate_workflow(config, ROOT / "workflow/schemas/config.schema.yaml")
    return config


@pytest.fixture(scope="module")
def paper():
    return RunConfigs(workflow_config("config.yaml"))


@pytest.fixture(scope="module")
def demo():
    return RunConfigs(workflow_config("demo.yaml"))


WRN34 = {"arch": "wide_resnet", "depth": 34, "width": 10}
WRN28 = {"arch": "wide_resnet", "depth": 28, "width": 10}
PRN18 = {"arch": "preact_resnet18"}

# config/config.yaml, one row per setting: (model, epochs, lr, step size, eps ramp epochs, augmentation,
# extra data, lambda, gamma, lambda warm-up); every setting: eps 8/255, lr decays at 50 % and 75 %.
PAPER_SETTINGS = {
    "cifar10": (WRN34, 200, 0.1, "2/255", None, "crop_flip", None, 0.1, 0.007, True),
    "cifar10_idbh": (WRN34, 200, 0.1, "2/255", None, "idbh", None, 0.1, 0.005, True),
    "cifar10_idbh_wrn28": (WRN28, 400, 0.1, "2/255", None, "idbh", None, 0.1, 0.005, True),
    "cifar10_ti500k": (WRN28, 200, 0.1, "2/255", None, "crop_flip", "ti500k", 0.01, 0.005, True),
    "cifar100": (PRN18, 200, 0.1, "2/255", None, "crop_flip", None, 0.1, 0.005, True),
    "svhn": (PRN18, 200, 0.01, "1/255", 5, "none", None, 0.1, 0.009, False),
    "cifar10_prn18": (PRN18, 200, 0.1, "2/255", None, "crop_flip", None, None, None, None),
    "cifar10_prn18_ti500k": (PRN18, 200, 0.1, "2/255", None, "crop_flip", "ti500k", None, None, None),
}
DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn"}


def paper_run(setting: str, method: dict, seed: int, epochs: int | None = None) -> dict:
    """The expected overrides of a full training in config/config.yaml: its row above, on CUDA."""
    model, row_epochs, lr, step, ramp, augmentation, extra, *_ = PAPER_SETTINGS[setting]
    dataset = DATASET.get(setting, "cifar10")
    data = {
        "selection": "validation",
        "validation_size": 1000,
        "num_workers": 4,
        "augmentation": augmentation,
        "dataset": dataset,
        "root": f"data/{dataset}",
    }
    if extra:
        data.update(extra_ratio=1.0, extra="data/ti500k")
    attack = {"eps": "8/255", "step_size": step, **({"ramp_epochs": ramp} if ramp is not None else {})}
    return {
        "runtime": {"device": "cuda", "progress": False},
        "data": data,
        "model": model,
        "training": {"epochs": epochs or row_epochs, "lr": lr, "lr_milestones": [0.5, 0.75]},
        "attack": attack,
        "method": method,
        "seed": seed,
    }


def test_the_table_covers_every_setting_of_the_paper_config(paper):
    assert set(PAPER_SETTINGS) == set(paper.settings)


@pytest.mark.parametrize("setting", [s for s, row in PAPER_SETTINGS.items() if row[7] is not None])
def test_iseat_full_training_of_each_paper_setting(paper, setting):
    *_, lam, gamma, warmup = PAPER_SETTINGS[setting]
    method = {"name": "iseat", "lam": [0.0, lam] if warmup else lam, "gamma": gamma}
    epochs = 400 if setting == "cifar10_idbh" else None  # IDBH + ISEAT: 400 epochs (its method_train)
    assert paper.run_overrides(setting, "iseat", 2) == paper_run(setting, method, 2, epochs)


@pytest.mark.parametrize(
    "setting, method, expected",
    [
        ("cifar10", "at", {"name": "at"}),
        ("cifar10", "at_awp", {"name": "at_awp", "gamma": 0.005}),
        ("cifar10_idbh", "at", {"name": "at"}),
        ("cifar100", "at", {"name": "at"}),
        ("svhn", "at", {"name": "at"}),
        ("cifar10_prn18", "at", {"name": "at"}),
        ("cifar10_prn18", "at_awp", {"name": "at_awp", "gamma": 0.005}),
        ("cifar10_prn18_ti500k", "at_extra", {"name": "at"}),
    ],
)
def test_base_and_baseline_runs_of_each_paper_setting(paper, setting, method, expected):
    assert paper.run_overrides(setting, method, 0) == paper_run(setting, expected, 0)


@pytest.mark.parametrize(
    "method, name, step",
    [
        ("trades", "trades", 0.007),
        ("mart", "mart", 0.007),
        ("gairat", "gairat", 0.007),
        ("fat", "fat", 0.007),
        ("trades_awp", "trades_awp", None),
        ("mart_awp", "mart_awp", None),
        ("rwp", "rwp", None),
    ],
)
def test_baselines_take_their_published_step_size(paper, method, name, step):
    run = paper.run_overrides("cifar10", method, 1)
    assert run["method"] == {"name": name}
    assert run["attack"] == {"eps": "8/255", "step_size": step if step is not None else "2/255"}


@pytest.mark.parametrize(
    "method, name",
    [
        ("rst", {"name": "trades"}),
        ("rst_mart", {"name": "mart"}),
        ("rst_awp", {"name": "trades_awp"}),
        ("rst_rwp", {"name": "trades_rwp", "statistics_passes": ["adv", "clean"]}),
    ],
)
def test_rst_runs_mix_in_the_pseudo_labelled_data(paper, method, name):
    run = paper.run_overrides("cifar10_ti500k", method, 0)
    assert run["method"] == name
    assert run["data"]["extra"] == "data/ti500k" and run["data"]["extra_ratio"] == 1.0
    assert run["model"] == WRN28


def test_swa_run_averages_and_keeps_iseat(paper):
    run = paper.run_overrides("cifar10", "iseat_swa", 0)
    assert run["training"]["swa"] == {"enabled": True}
    assert run["method"] == {"name": "iseat", "lam": [0.0, 0.1], "gamma": 0.007}


@pytest.mark.parametrize(
    "method, expected",
    [
        ("ft_at_lsi", {"name": "at_lsi", "lam": 0.1}),
        ("ft_at_awp", {"name": "at_awp", "gamma": 0.007}),
        ("ft_iseat", {"name": "iseat", "lam": 0.1, "gamma": 0.007}),
        ("ft_iseat_kl", {"name": "iseat", "distance": "kl", "weighting": "uniform", "lam": 0.1, "gamma": 0.007}),
        ("ft_iseat_top10", {"name": "iseat", "weighting": "top10", "lam": 0.1, "gamma": 0.007}),
        ("ft_iseat_trade_awp", {"name": "iseat", "target": "trade_awp", "lam": 0.1, "gamma": 0.007}),
    ],
)
def test_fine_tuned_ablations_start_from_the_base_run_without_warm_up(paper, method, expected):
    run = paper.run_overrides("cifar10", method, 1)
    assert run["method"] == expected  # lambda constant: fine-tuning has no warm-up
    assert run["training"] == {
        "epochs": 40,
        "lr": 0.01,
        "lr_milestones": [0.5],
        "finetune_from": "results/cifar10/at/seed1/best.pt",
        "finetune_checkpoint": "best",
    }
    assert run["attack"] == {"eps": "8/255", "step_size": "2/255", "ramp_epochs": 0}
    assert run["runtime"]["device"] == "cuda" and run["seed"] == 1


def test_svhn_fine_tuning_drops_the_eps_ramp(paper):
    run = paper.grid_overrides("svhn", "0.1", "0.009")
    assert run["attack"] == {"eps": "8/255", "step_size": "1/255", "ramp_epochs": 0}
    assert run["training"]["lr"] == 0.01 and run["training"]["epochs"] == 40


@pytest.mark.parametrize("setting, base", [("cifar10", "at"), ("cifar10_ti500k", "at_extra"), ("cifar100", "at")])
def test_grid_points_fine_tune_with_constant_lambda_on_the_validation_split(paper, setting, base):
    run = paper.grid_overrides(setting, "0.3", "0.009")
    assert run["method"] == {"name": "iseat", "lam": 0.3, "gamma": 0.009}
    assert run["seed"] == 0 and run["data"]["selection"] == "validation"
    assert run["training"]["finetune_from"] == f"results/{setting}/{base}/seed0/best.pt"
    assert run["training"]["epochs"] == 40 and run["training"]["lr"] == 0.01


def test_paper_resources_layer_defaults_config_and_setting(paper):
    assert paper.job_resources("train", "cifar10") == {
        "gpu": 1,
        "threads": 8,
        "mem_mb": 32000,
        "runtime": 2880,
        "partition": "",
    }
    assert paper.job_resources("evaluate", "svhn") == {
        "gpu": 1,
        "threads": 4,
        "mem_mb": 16000,
        "runtime": 480,
        "partition": "",
    }
    assert paper.job_resources("light") == {"gpu": 0, "threads": 1, "mem_mb": 8000, "runtime": 120, "partition": ""}
    assert paper.job_device("evaluate", "cifar10") == "cuda" and paper.job_device("light") == "cpu"


def test_step_timing_measures_the_model_of_its_setting(paper, demo):
    assert paper.step_timing_options() == "--model wide_resnet --batch-size 128 --repeats 20 --warmup 3"
    assert demo.step_timing_options() == "--model small_cnn --batch-size 32 --repeats 3 --warmup 1"
    assert RunConfigs({**paper.config, "step_timing": None}).step_timing_options() == ""


# ----------------------------------------------------------------------------- config/demo.yaml

DEMO_COMMON = {
    "runtime": {"device": "cpu", "progress": False},
    "model": {"arch": "small_cnn"},
    "evaluation": {"max_samples": 100},
}


def demo_data(augmentation=None) -> dict:
    data = {"selection": "validation", "validation_size": 100, "num_workers": 0}
    if augmentation:
        data["augmentation"] = augmentation
    return {**data, "dataset": "digits", "root": "data/digits"}


def test_demo_digits_runs(demo):
    full = {
        **DEMO_COMMON,
        "data": demo_data(),
        "training": {"epochs": 3, "batch_size": 32, "lr": 0.05, "lr_milestones": [0.67]},
        "attack": {"eps": "8/255", "step_size": "2/255"},
        "seed": 0,
    }
    assert demo.run_overrides("digits", "at", 0) == {**full, "method": {"name": "at"}}
    # ISEAT takes the grid's winner (tuned.source: grid): no pinned lambda/gamma on the command line
    assert demo.run_overrides("digits", "iseat", 0) == {**full, "method": {"name": "iseat"}}
    swa = demo.run_overrides("digits", "iseat_swa", 0)
    assert swa["training"]["swa"] == {"enabled": True, "decay": 0.05}
    assert demo.run_overrides("digits", "trades", 0)["attack"] == {"eps": "8/255", "step_size": 0.007}
    assert demo.run_overrides("digits", "ft_iseat", 0) == {
        **DEMO_COMMON,
        "data": demo_data(),
        "attack": {"eps": "8/255", "step_size": "2/255", "ramp_epochs": 0},
        "training": {
            "epochs": 1,
            "batch_size": 32,
            "lr": 0.01,
            "lr_milestones": [],
            "finetune_from": "results/demo/digits/at/seed0/best.pt",
            "finetune_checkpoint": "best",
        },
        "method": {"name": "iseat"},
        "seed": 0,
    }


def test_demo_grid_point(demo):
    run = demo.grid_overrides("digits", "0.05", "0.007")
    assert run["method"] == {"name": "iseat", "lam": 0.05, "gamma": 0.007}
    assert run["training"]["finetune_from"] == "results/demo/digits/at/seed0/best.pt"
    assert run["data"] == demo_data() and run["seed"] == 0


def test_demo_eta_sweep_run_fine_tunes_at_eq9_from_the_base_at_run(demo):
    """Fig. 4's sweep in config/demo.yaml: analysis.eta_sweep {setting: digits, base: at, one epoch at lr 0.01}."""
    sweep = demo.config["analysis"]["eta_sweep"]
    assert demo.eta_sweep_overrides(sweep, "1.0", 0) == {
        **DEMO_COMMON,
        "data": demo_data(),
        "attack": {"eps": "8/255", "step_size": "2/255"},
        "training": {
            "epochs": 1,
            "batch_size": 32,
            "lr": 0.01,
            "lr_milestones": [],
            "finetune_from": "results/demo/digits/at/seed0/best.pt",
            "finetune_checkpoint": "best",
        },
        "method": {"name": "at_eq9", "eta": 1.0},
        "seed": 0,
    }


def test_demo_digits_svhn_runs_pinned_lambda_without_warm_up(demo):
    expected = {
        **DEMO_COMMON,
        "data": demo_data("none"),
        "training": {"epochs": 3, "batch_size": 32, "lr": 0.05, "lr_milestones": [0.67]},
        "attack": {"eps": "8/255", "step_size": "1/255", "ramp_epochs": 1},
        "seed": 3,
    }
    assert demo.run_overrides("digits_svhn", "iseat", 3) == {
        **expected,
        "method": {"name": "iseat", "lam": 0.1, "gamma": 0.009},
    }
    assert demo.run_overrides("digits_svhn", "at", 3) == {**expected, "method": {"name": "at"}}


def test_demo_runs_on_the_cpu_with_its_small_resources(demo):
    assert demo.job_resources("train", "digits") == {
        "gpu": 0,
        "threads": 1,
        "mem_mb": 2000,
        "runtime": 30,
        "partition": "",
    }
    assert demo.job_device("evaluate", "digits") == "cpu"


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_every_run_is_a_valid_train_config(name):
    """Each run's `--set` arguments, parsed back as `iseat train` does, give a config the train schema accepts
    (its paths pointed at an existing folder: nothing is fetched here)."""
    runs = RunConfigs(workflow_config(name))
    for setting, s in runs.settings.items():
        for method in s["methods"]:
            cfg = deep_merge(DEFAULTS)
            for assignment in shlex.split(set_args(runs.run_overrides(setting, method, 0))):
                apply_override(cfg, assignment)
            for section, key in (("data", "root"), ("data", "extra"), ("training", "finetune_from")):
                if cfg[section][key]:
                    cfg[section][key] = str(ROOT)
            validate(cfg)


# ----------------------------------------------------------------------------- the parts


def test_lambda_schedule():
    assert lambda_schedule(0.1, True) == [0.0, 0.1]
    assert lambda_schedule("0.3", False) == 0.3


def test_deep_merge_later_layers_win_and_inputs_stay_unchanged():
    a, b = {"x": {"y": 1, "z": [1]}, "k": 1}, {"x": {"y": 2}, "k": {"n": 1}}
    merged = deep_merge(a, None, b)
    assert merged == {"x": {"y": 2, "z": [1]}, "k": {"n": 1}}
    merged["x"]["z"].append(2)
    assert a == {"x": {"y": 1, "z": [1]}, "k": 1}


def test_set_args_are_sorted_and_quoted():
    assert set_args({"method": {"lam": [0.0, 0.1], "name": "iseat"}, "data": {"root": "a b"}, "seed": 0}) == (
        "'data.root=a b' 'method.lam=[0.0, 0.1]' method.name=iseat seed=0"
    )
