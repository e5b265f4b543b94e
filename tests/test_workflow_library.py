"""The workflow library the rules call (iseat.workflow.paths, checks, resources, commands), without Snakemake:
every path is written out here as the documented layout (config/README.md), every refusal is one line naming
its key, and the run configs of every setting of config/config.yaml and config/demo.yaml point at the
paths the rules give their inputs."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from iseat.workflow.checks import ConfigError, checked
from iseat.workflow.commands import AnalysisCommands, Commands
from iseat.workflow.jobs import train_config
from iseat.workflow.paths import AnalysisPaths, Paths, alternatives
from iseat.workflow.resources import RuleResources, gpu_count, job_device, job_resources
from iseat.workflow.run_config import RunConfigs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflow"
CONFIGS = ("config.yaml", "demo.yaml")


def raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def check(config: dict) -> dict:
    return checked(
        config,
        WORKFLOW / "methods.yaml",
        WORKFLOW / "schemas/config.schema.yaml",
        WORKFLOW / "schemas/analysis.schema.yaml",
    )


@pytest.fixture(scope="module")
def demo() -> dict:
    return check(raw("demo.yaml"))


@pytest.fixture(scope="module", params=CONFIGS)
def each_config(request) -> dict:
    return check(raw(request.param))


# ----------------------------------------------------------------------------- paths


def test_patterns_and_filled_paths_are_one_layout(demo):
    paths = Paths(demo)
    assert paths.summary() == "results/demo/{setting}/{method}/seed{seed}/summary.json"
    assert paths.summary("digits", "at", 0) == "results/demo/digits/at/seed0/summary.json"
    assert paths.evaluation() == "results/demo/{setting}/{method}/seed{seed}/{evaluation}.json"
    assert paths.shard(2, "aa", setting="d", method="at", seed=1) == "results/demo/d/at/seed1/aa.shards/2.json"
    assert paths.aggregated("d", "at", "pgd") == "results/demo/d/at/pgd.json"
    assert paths.grid_dir("d", "0.1", "0.007") == "results/demo/d/grid/lam0.1_gamma0.007"
    assert paths.tuned("d", "iseat") == "results/demo/d/iseat/tuned.yaml"
    assert paths.manifest("digits") == "data/digits/manifest.json"
    assert paths.log("grid", "{setting}/winner.log") == "results/demo/logs/grid/{setting}/winner.log"
    assert paths.step_timing("md") == "results/demo/benchmarks/step_timing.md"


def test_rule_inputs_of_a_fine_tune_a_grid_winner_and_a_grid_point(demo):
    paths = Paths(demo)
    assert paths.run_inputs("digits", "ft_iseat", 0) == {
        "data": ["data/digits/manifest.json"],
        "base": "results/demo/digits/at/seed0/summary.json",
        "tuned": "results/demo/digits/ft_iseat/tuned.yaml",  # the digits setting takes the grid's winner
    }
    assert paths.run_inputs("digits", "iseat", 0)["tuned"] == "results/demo/digits/iseat/tuned.yaml"
    assert "tuned" not in paths.run_inputs("digits_svhn", "iseat", 0)  # pinned values
    assert paths.grid_points("digits") == [("0.05", "0.005"), ("0.05", "0.007"), ("0.1", "0.005"), ("0.1", "0.007")]
    assert paths.grid_runs("digits")[-1] == "results/demo/digits/grid/lam0.1_gamma0.007/summary.json"
    assert paths.method_names("finetune") == {"ft_iseat"}
    assert paths.method_names("scratch") == {"at", "iseat", "iseat_swa", "trades", "mart"}


def test_final_outputs_of_the_demo(demo):
    paths, analysis = Paths(demo), AnalysisPaths(Paths(demo))
    outputs = paths.final_outputs(analysis.final_outputs())
    # index, 8 (setting, method) x 2 evaluations, 1 grid winner, 6 tables x 3 formats, figures: results,
    # 2 training, 1 grid, 2 curves; the analysis: 2 Fig. 1a, 3 runs x (Fig. 1b, Fig. 2), Fig. 3, Fig. 4, Tab. 1, index
    assert len(outputs) == 1 + 16 + 1 + 18 + 6 + 2 + 6 + 1 + 1 + 1 + 1
    assert len(set(outputs)) == len(outputs)
    assert outputs[0] == "results/demo/README.md" and outputs[-1] == "results/demo/analysis/README.md"
    assert "results/demo/figures/curves_digits_svhn.png" in outputs
    assert analysis.checkpoint("eq9") == "results/demo/analysis/eta_sweep/eta1/best.pt"
    assert analysis.eta_dir() == "results/demo/analysis/eta_sweep/eta{eta}"


def test_alternatives_match_exactly_the_names():
    assert alternatives(["b.x", "a"]) == r"a|b\.x"
    assert alternatives([]) == "(?!)"


# ----------------------------------------------------------------------------- checks


def setting_mistake(config, **change):
    config["settings"]["digits"].update(change)


REFUSALS = [
    (lambda c: setting_mistake(c, methods=["at", "nope"]), "settings.digits.methods[1]: unknown method 'nope'"),
    (lambda c: c["settings"]["digits_svhn"].pop("tuned"), "settings.digits_svhn.tuned: required: method 'iseat'"),
    (lambda c: setting_mistake(c, method_train={"at_awp": {}}), "settings.digits.method_train.at_awp: 'at_awp' is not"),
    (lambda c: setting_mistake(c, finetune={}), "settings.digits.finetune.base: required"),
    (lambda c: setting_mistake(c, finetune={"base": "ft_iseat"}), "settings.digits.finetune.base: 'ft_iseat' must be"),
    (lambda c: c["settings"]["digits"]["grid"].update(method="nope"), "settings.digits.grid.method: unknown method"),
    (
        lambda c: c["settings"]["digits_svhn"]["tuned"].update(source="grid"),
        "settings.digits_svhn: 'grid' is a required",
    ),
    (lambda c: setting_mistake(c, extra="ti500k"), "settings.digits.extra: ti500k only extends cifar10"),
    (lambda c: c["step_timing"].update(setting="nope"), "step_timing.setting: unknown setting 'nope'"),
    (lambda c: c["settings"]["digits"].update(colour="red"), "settings.digits: Additional properties"),
    (lambda c: c["analysis"]["runs"].append(c["analysis"]["runs"][0]), "analysis.runs: a name is given twice"),
    (lambda c: c["analysis"]["runs"][0].update(setting="nope"), "analysis.runs[0].setting: unknown setting"),
    (lambda c: c["analysis"]["runs"][0].update(method="trades_awp"), "analysis.runs[0].method: 'trades_awp'"),
    (lambda c: c["analysis"].update(seed=7), "analysis.seed: setting 'digits' runs seeds [0], not 7"),
    (lambda c: c["analysis"].pop("eta_sweep"), "analysis.runs[2].eta: needs an analysis.eta_sweep block"),
    (lambda c: c["analysis"].update(table1=["at", "who"]), "analysis.table1: 'who' is not a name in analysis.runs"),
    (lambda c: c["analysis"]["eta_sweep"].update(setting="nope"), "analysis.eta_sweep.setting: unknown setting"),
    (lambda c: c["analysis"]["eta_sweep"].update(base="ft_iseat"), "analysis.eta_sweep.base: 'ft_iseat' must be"),
]


@pytest.mark.parametrize("mistake, message", REFUSALS)
def test_each_config_mistake_is_one_line_naming_its_key(mistake, message):
    config = raw("demo.yaml")
    mistake(config)
    with pytest.raises(ConfigError) as refused:
        check(config)
    text = str(refused.value)
    assert text.startswith(f"config: {message}"), text
    assert "\n" not in text


def test_both_shipped_configs_pass_the_checks(each_config):
    assert set(each_config["methods"]) >= {"at", "iseat"} and "analysis" in each_config


# ----------------------------------------------------------------------------- resources


def wildcards(**values):
    return SimpleNamespace(**values)


def test_resources_layer_defaults_config_and_setting():
    config = check(raw("config.yaml"))
    assert job_resources(config, "train", "cifar10") == {
        "gpu": 1,
        "threads": 8,
        "mem_mb": 32000,
        "runtime": 2880,
        "partition": "",
    }
    assert gpu_count(config, "evaluate", "svhn") == 1 and gpu_count(config, "light") == 0
    assert job_device(config, "train", "cifar10") == "cuda" and job_device(config, "light") == "cpu"


def test_rule_resources_per_class_and_setting(demo):
    rules = RuleResources(demo)
    light, train = rules.of("light"), rules.of("train")
    assert set(light) == {"mem_mb", "runtime"}  # no GPU, no attempt, no partition unless the config names one
    assert set(train) == {"gpu", "attempt", "mem_mb", "runtime"}
    assert train["gpu"](wildcards(setting="digits")) == 0
    assert train["runtime"](wildcards(setting="digits")) == 30 and light["mem_mb"](wildcards()) == 1000
    assert train["attempt"](wildcards(), 3) == 3
    assert rules.threads("evaluate")(wildcards(setting="digits_svhn")) == 1
    named = copy.deepcopy(demo)
    named["settings"]["digits"]["resources"] = {"train": {"partition": "long", "gpu": 2}}
    train = RuleResources(named).of("train")
    assert train["slurm_partition"](wildcards(setting="digits")) == "long"
    assert train["slurm_partition"](wildcards(setting="digits_svhn")) == ""
    assert train["gpu"](wildcards(setting="digits")) == 2


# ----------------------------------------------------------------------------- commands


def test_command_options_of_the_demo(demo):
    paths = Paths(demo)
    commands = Commands(demo, paths)
    assert commands.evaluation_args("pgd", "digits") == "--attack pgd --pgd-steps 20 --device cpu --no-progress"
    assert commands.evaluation_args("aa", "digits") == "--attack autoattack-apgd --device cpu --no-progress"
    assert commands.sweep_args("digits").startswith("--eps-sweep 0 2/255 4/255 8/255 16/255 64/255 --pgd-steps 5")
    assert commands.checkpoint("iseat_swa", "R/d/m/seed0/summary.json") == "R/d/m/seed0/swa_best.pt"  # methods.yaml
    grid = commands.grid_point_args("digits", paths.grid_runs("digits"))
    assert grid.startswith("--point 0.05 0.005 results/demo/digits/grid/lam0.05_gamma0.005 --point 0.05 0.007")
    assert grid.endswith("--paper-choice 0.1 0.007 --used grid")
    assert commands.result_entries("digits_svhn") == (
        "--entry digits_svhn at svhn results/demo/digits_svhn/at --entry digits_svhn iseat svhn "
        "results/demo/digits_svhn/iseat"
    )
    assert commands.title("digits") == "'digits small CNN (stands in for CIFAR-10)'"
    analysis = AnalysisCommands(AnalysisPaths(paths))
    assert analysis.options("margin") == (  # the demo's values and the schema's defaults, keys sorted
        "--batch-size 50 --figure-mus 0 1 2 4 8 16 32 50 --mu-max 20 --pgd-steps 10 --scan-growth 0.1 "
        "--scan-step 0.1 --tol 0.001"
    )
    assert analysis.eta_vulnerability_options().startswith("--batch-size ")


# ----------------------------------------------------------------------------- run configs and paths


def test_every_run_config_points_at_the_paths_its_rule_waits_for(each_config):
    """Each run of every setting: its data roots are the folders of the manifests the rule takes as input,
    and a fine-tune starts from a checkpoint in the base run whose summary the rule waits for."""
    paths, runs = Paths(each_config), RunConfigs(each_config)
    for setting in paths.settings:
        for method in paths.methods_of(setting):
            for seed in paths.seeds_of(setting):
                inputs = paths.run_inputs(setting, method, seed)
                data = runs.run_overrides(setting, method, seed)["data"]
                roots = [data["root"], *([data["extra"]] if data.get("extra") else [])]
                assert [f"{root}/manifest.json" for root in roots] == inputs["data"]
                start = runs.run_overrides(setting, method, seed).get("training", {}).get("finetune_from")
                if "base" in inputs:
                    assert Path(start).parent == Path(inputs["base"]).parent
                else:
                    assert start is None


def test_a_training_takes_the_grid_winner_under_its_own_values_once_written(tmp_path, demo):
    """As `iseat train --config tuned.yaml --set ...`: defaults < the winner's values < the run's overrides."""
    overrides = RunConfigs(demo).run_overrides("digits", "iseat", 0)
    tuned = tmp_path / "tuned.yaml"
    assert train_config(overrides, str(tuned))["method"] == {
        "name": "iseat"
    }  # not written yet: the plan before the grid
    tuned.write_text(yaml.safe_dump({"method": {"lam": [0.0, 0.05], "gamma": 0.005}, "seed": 9}))
    cfg = train_config(overrides, str(tuned))
    assert cfg["method"]["lam"] == [0.0, 0.05] and cfg["method"]["gamma"] == 0.005 and cfg["method"]["name"] == "iseat"
    assert cfg["seed"] == 0 and cfg["model"]["arch"] == "small_cnn"  # the run's own values win
