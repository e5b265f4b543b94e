"""The Snakemake workflow's plan (dry runs): the paper's matrix under both profiles, single targets,
the commands each rule assembles from the config, lint, and config mistakes."""

import copy
import re

import pytest
import yaml
from workflow_run import ROOT, SNAKEMAKE, scratch_workdir, snakemake

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")

PAPER_CONFIG = ROOT / "config" / "config.yaml"

# Jobs of `all` for config/config.yaml: 6 settings, 3 seeds.
#   train: cifar10 4 + 7 baselines, cifar10_idbh 2, cifar10_idbh_wrn28 1, cifar10_ti500k 2 + 5 baselines,
#          cifar100 2, svhn 2 -> 25 x 3 seeds, + 3 Section 3 runs (one seed)
#   finetune: 8 ablations (Tab. 4-6) x 3 seeds; grid: 3 x 3 points in each of 5 settings
#   evaluate: (78 + 24) runs x (AutoAttack, PGD), each as 4 shards (evaluation.shards) and their gather;
#   aggregate_seeds: 36 (setting, method) x 2; the eps sweep (evaluation.sweep): one job per run, its
#   aggregation per (setting, method) and a figure per setting
PAPER_JOBS = {
    "fetch": 4,
    "train": 78,
    "finetune": 24,
    "grid_finetune": 45,
    "grid_select": 5,
    "evaluate_shard": 816,
    "evaluate_gather": 204,
    "evaluate_sweep": 102,
    "aggregate_sweep": 36,
    "figure_curves": 8,
    "aggregate_seeds": 72,
    "tables": 1,
    "figure_results": 1,
    "figure_training": 8,
    "figure_grid": 5,
    "index": 1,
    "all": 1,
    "benchmark_step": 1,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One scratch working directory for the module's dry runs (they write nothing but .snakemake/)."""
    return scratch_workdir(tmp_path_factory.mktemp("workflow"))


def dry_run(workdir, *args, config=None):
    extra = []
    if config is not None:
        path = workdir / "config" / "test_config.yaml"
        path.write_text(yaml.safe_dump(config))
        extra = ["--configfile", str(path)]
    out = snakemake(workdir, "-n", "-p", *args, *extra)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    return out.stdout + out.stderr


def job_counts(text: str) -> dict:
    """The first 'Job stats' table of a dry run."""
    block = text[text.index("Job stats:") :]
    counts = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def job_blocks(text: str) -> list:
    """(rule, the lines the dry run prints for one job: resources, shell command) of every planned job."""
    blocks = re.split(r"\n(?=(?:local)?rule \w+:\n)", text)
    return [
        (re.match(r"(?:local)?rule (\w+):", b).group(1), b) for b in blocks if re.match(r"(?:local)?rule \w+:\n", b)
    ]


def paper_config() -> dict:
    return yaml.safe_load(PAPER_CONFIG.read_text())


def workflow_jobs(counts: dict) -> dict:
    """Jobs of the workflow's own rule families (rules/analysis.smk adds analysis_* rules)."""
    return {rule: n for rule, n in counts.items() if not rule.startswith("analysis")}


@pytest.mark.parametrize("profile", ["profiles/local", "profiles/slurm"])
def test_paper_matrix_plans_every_rule_family(workdir, profile):
    text = dry_run(workdir, "--profile", profile, "all")
    assert workflow_jobs(job_counts(text)) == PAPER_JOBS
    assert f"{sum(PAPER_JOBS.values())}" in text
    # heavy rules ask for a GPU and the setting's time limit (light rules are Snakemake localrules)
    gpu_jobs = [line for line in text.splitlines() if "resources:" in line and "gpu=1" in line]
    assert any("runtime=2880" in line and "mem_mb=32000" in line for line in gpu_jobs)  # cifar10 trainings
    assert any("runtime=480" in line for line in gpu_jobs)  # svhn fine-tunes and evaluations


def test_profiles_are_config_yaml_only():
    for name in ("slurm", "local"):
        folder = ROOT / "profiles" / name
        assert (folder / "config.yaml").is_file()
        assert not (folder / "profile.yaml").exists()
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["rerun-incomplete"] is True and slurm["retries"] >= 1 and slurm["latency-wait"] > 0
    assert slurm["slurm-keep-successful-logs"] is True
    assert "slurm_partition" not in str(slurm) and "slurm_account" not in {
        k for k in slurm.get("default-resources", {})
    }


def test_site_profile_sets_partition_and_account_on_every_gpu_job(workdir):
    """Site facts live in a profile: its default-resources and set-resources reach every GPU job,
    because the rules name no partition unless the config does."""
    profile = yaml.safe_load((workdir / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="gpu_a100", slurm_account="proj42")
    profile["set-resources"] = {"evaluate_shard": {"slurm_partition": "gpu_eval", "gpu_model": "a100"}}
    (workdir / "profiles" / "site").mkdir(exist_ok=True)
    (workdir / "profiles" / "site" / "config.yaml").write_text(yaml.safe_dump(profile))
    text = dry_run(
        workdir, "--profile", "profiles/site", "results/cifar10/iseat/aa.json", "results/cifar10/ft_at_lsi/pgd.json"
    )
    gpu_jobs = [(rule, block) for rule, block in job_blocks(text) if "gpu=1" in block]
    # 6 trainings, 3 fine-tunes, 2 x 3 evaluations of 4 shards each
    assert sorted({rule for rule, _ in gpu_jobs}) == ["evaluate_shard", "finetune", "train"] and len(gpu_jobs) == 33
    for rule, block in gpu_jobs:
        partition = "gpu_eval" if rule == "evaluate_shard" else "gpu_a100"
        assert f"slurm_partition={partition}," in block and "slurm_account=proj42" in block, block
    assert all("gpu_model=a100" in block for rule, block in gpu_jobs if rule == "evaluate_shard")


def test_rules_name_a_partition_only_when_the_config_does(workdir):
    assert "slurm_partition" not in dry_run(workdir, "--profile", "profiles/slurm", "results/svhn/iseat/aa.json")
    cfg = paper_config()
    cfg["resources"]["train"]["partition"] = "long"
    cfg["settings"]["svhn"].setdefault("resources", {})["evaluate"] = {"partition": "short"}
    text = dry_run(workdir, "--profile", "profiles/slurm", "results/svhn/iseat/aa.json", config=cfg)
    partitions = {
        (rule, re.search(r"slurm_partition=(\w*)", block).group(1))
        for rule, block in job_blocks(text)
        if "gpu=1" in block
    }
    assert partitions == {("train", "long"), ("evaluate_shard", "short")}


def test_gpu_jobs_ask_for_cuda_and_cpu_jobs_for_the_cpu(workdir):
    """A job given a GPU fails fast without a usable one (iseat.common.device) instead of training on the CPU."""
    for args, device in [(("all",), "cuda"), (("all", "--configfile", "config/demo.yaml"), "cpu")]:
        jobs = [
            (rule, block)
            for rule, block in job_blocks(dry_run(workdir, *args))
            if re.search(r"iseat --attempt 1 (train|evaluate|analyse margin|analyse landscape) ", block)
        ]
        assert len(jobs) > 20
        for _rule, block in jobs:
            assert f"gpu={int(device == 'cuda')}," in block and (
                f"runtime.device={device} " in block or f"--device {device} " in block
            ), block


def test_one_result_plans_only_its_ancestors(workdir):
    text = dry_run(workdir, "results/cifar10/iseat/aa.json")
    assert job_counts(text) == {
        "fetch": 1,
        "train": 3,
        "evaluate_shard": 12,
        "evaluate_gather": 3,
        "aggregate_seeds": 1,
    }
    for seed in range(3):
        run = f"results/cifar10/iseat/seed{seed}"
        assert f"iseat --attempt 1 train  --out {run} " in text
        for shard in range(1, 5):
            assert (
                f"iseat --attempt 1 evaluate --checkpoint {run}/best.pt --out {run}/aa.shards/{shard}.json "
                f"--attack autoattack --device cuda --no-progress --shard {shard}/4"
            ) in text
        assert (
            f"iseat evaluate --checkpoint {run}/best.pt --out {run}/aa.json --attack autoattack --device cpu "
            f"--no-progress --gather {' '.join(f'{run}/aa.shards/{i}.json' for i in range(1, 5))}"
        ) in text
    assert "iseat fetch cifar10 --root data" in text
    assert "pgd" not in re.findall(r"--attack (\w+)", text)
    assert "results/cifar10/at/" not in text and "svhn" not in text


def test_train_commands_follow_the_config(workdir):
    text = dry_run(workdir, "all")
    cmd = lambda out: next(
        line for line in text.splitlines() if f"--out {out} " in line and "iseat --attempt 1 train" in line
    )
    iseat = cmd("results/cifar10/iseat/seed0")
    for part in (
        "method.name=iseat",
        "'method.lam=[0.0, 0.1]'",
        "method.gamma=0.007",
        "model.arch=wide_resnet",
        "model.depth=34",
        "training.epochs=200",
        "data.root=data/cifar10",
        "seed=0",
        "data.selection=validation",
    ):
        assert part in iseat
    assert "training.epochs=400" in cmd("results/cifar10_idbh/iseat/seed1")
    assert "data.augmentation=idbh" in cmd("results/cifar10_idbh/at/seed1")
    assert "training.epochs=200" in cmd("results/cifar10_idbh/at/seed1")
    svhn = cmd("results/svhn/iseat/seed2")
    for part in (
        "method.lam=0.1 ",
        "method.gamma=0.009",
        "training.lr=0.01",
        "attack.step_size=1/255",
        "attack.ramp_epochs=5",
        "data.augmentation=none",
        "model.arch=preact_resnet18",
    ):
        assert part in svhn
    at_extra = cmd("results/cifar10_ti500k/at_extra/seed0")
    assert "method.name=at " in at_extra and "data.extra=data/ti500k" in at_extra and "model.depth=28" in at_extra
    assert "'method.lam=[0.0, 0.01]'" in cmd("results/cifar10_ti500k/iseat/seed0")
    assert "training.swa.enabled=true" in cmd("results/cifar10/iseat_swa/seed0")
    assert "--checkpoint results/cifar10/iseat_swa/seed0/swa_best.pt" in text
    lsi = cmd("results/cifar10/ft_at_lsi/seed1")
    for part in (
        "method.name=at_lsi",
        "method.lam=0.1 ",
        "training.epochs=40",
        "training.lr=0.01",
        "'training.lr_milestones=[0.5]'",
        "training.finetune_from=results/cifar10/at/seed1/best.pt",
    ):
        assert part in lsi
    assert "method.gamma" not in lsi
    assert "method.lam" not in cmd("results/cifar10/ft_at_awp/seed1")
    assert "method.target=trade_awp" in cmd("results/cifar10/ft_iseat_trade_awp/seed2")
    grid = cmd("results/svhn/grid/lam0.3_gamma0.005")
    for part in (
        "method.lam=0.3 ",
        "method.gamma=0.005",
        "attack.ramp_epochs=0",
        "training.epochs=40",
        "training.finetune_from=results/svhn/at/seed0/best.pt",
        "data.selection=validation",
    ):
        assert part in grid
    assert (
        "iseat aggregate grid --out results/cifar10/grid/winner.json "
        "--point 0.01 0.005 results/cifar10/grid/lam0.01_gamma0.005" in text
    )


def test_grid_winner_feeds_the_methods_that_take_it(workdir):
    cfg = paper_config()
    cfg["settings"]["cifar10"]["tuned"]["source"] = "grid"
    text = dry_run(workdir, "results/cifar10/iseat/aa.json", "results/cifar10/ft_at_lsi/aa.json", config=cfg)
    counts = job_counts(text)
    assert counts["grid_finetune"] == 9 and counts["grid_select"] == 1 and counts["grid_tuned"] == 2
    assert counts["train"] == 3 + 3  # iseat x 3 seeds and the base AT runs (seeds 0, 1, 2)
    assert (
        "iseat aggregate tuned --winner results/cifar10/grid/winner.json --keys lam gamma --lam-warmup "
        "--out results/cifar10/iseat/tuned.yaml" in text
    )
    assert (
        "iseat aggregate tuned --winner results/cifar10/grid/winner.json --keys lam  "
        "--out results/cifar10/ft_at_lsi/tuned.yaml" in text
    )
    line = next(
        row
        for row in text.splitlines()
        if "iseat --attempt 1 train --config results/cifar10/iseat/tuned.yaml --out results/cifar10/iseat/seed0" in row
    )
    assert "method.lam" not in line and "method.gamma" not in line


def test_demo_config_runs_every_family_on_digits(workdir):
    text = dry_run(workdir, "all", "--configfile", "config/demo.yaml")
    counts = workflow_jobs(job_counts(text))
    assert set(counts) == set(PAPER_JOBS) - {"evaluate_shard", "evaluate_gather"} | {
        "evaluate",
        "grid_tuned",
    }  # 1 shard
    assert counts["fetch"] == 1 and "iseat fetch digits --root data" in text
    assert "results/demo/" in text and "cifar10/" not in text.replace(
        "results/demo", ""
    )  # nothing of the paper's matrix
    # AutoAttack's APGD pair and PGD-20 on all 300 test images (no --n-ex)
    assert "--attack autoattack-apgd --device cpu" in text and "--attack pgd --pgd-steps 20 --device cpu" in text
    assert "runtime.device=cpu" in text and "model.arch=small_cnn" in text


def test_lint_is_clean(workdir):
    out = snakemake(workdir, "--lint")
    assert out.returncode == 0 and "Lints for" not in out.stdout + out.stderr, out.stdout[-4000:]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda c: c["settings"]["cifar10"]["train"]["model"].update(arch="resnet9000"),
            "config: settings.cifar10.train.model.arch: 'resnet9000' is not one of",
        ),
        (
            lambda c: c["settings"]["svhn"]["train"]["training"].update(epoch=3),
            "config: settings.svhn.train.training: Additional properties are not allowed ('epoch' was unexpected)",
        ),
        (
            lambda c: c["settings"]["cifar100"]["tuned"].update(lam=-1),
            "config: settings.cifar100.tuned.lam: -1 is less than the minimum of 0",
        ),
        (
            lambda c: c.update(seed=[0]),
            "config: (top level): Additional properties are not allowed ('seed' was unexpected)",
        ),
        (
            lambda c: c["settings"]["svhn"].update(tuned={"lam": 0.1, "gamma": 0.009, "source": "grid-winner"}),
            "config: settings.svhn.tuned.source: 'grid-winner' is not one of ['pinned', 'grid']",
        ),
        (
            lambda c: c["settings"]["cifar100"]["methods"].append("isaet"),
            "config: settings.cifar100.methods[2]: unknown method 'isaet'",
        ),
        (lambda c: c["settings"]["svhn"].pop("tuned"), "config: settings.svhn.tuned: required"),
        (
            lambda c: c["settings"]["svhn"].pop("grid") and c["settings"]["svhn"]["tuned"].update(source="grid"),
            "config: settings.svhn: 'grid' is a required property",
        ),
    ],
)
def test_config_mistakes_name_the_key(workdir, tmp_path, mutate, message):
    cfg = copy.deepcopy(paper_config())
    mutate(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake(workdir, "-n", "--configfile", str(path))
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert message in text, text[-3000:]


def test_evaluations_run_the_configured_attacks(workdir):
    cfg = copy.deepcopy(paper_config())
    cfg["evaluation"]["pgd"]["attacks"] = ["pgd", "cw"]
    text = dry_run(workdir, "results/cifar10/at/seed0/pgd.json", "results/cifar10/at/seed0/aa.json", config=cfg)
    assert (
        "--out results/cifar10/at/seed0/pgd.shards/2.json --attack pgd cw --pgd-steps 50 --device cuda --no-progress"
        in text
    )
    assert "--out results/cifar10/at/seed0/aa.shards/4.json --attack autoattack --device cuda --no-progress" in text
    cfg["evaluation"]["shards"] = 1  # one job per evaluation
    text = dry_run(workdir, "results/cifar10/at/seed0/pgd.json", config=cfg)
    assert "--out results/cifar10/at/seed0/pgd.json --attack pgd cw --pgd-steps 50 --device cuda --no-progress" in text
    assert "shards" not in text


BASELINES = {
    "cifar10": {
        "trades": "trades",
        "mart": "mart",
        "trades_awp": "trades_awp",
        "mart_awp": "mart_awp",
        "rwp": "rwp",
        "gairat": "gairat",
        "fat": "fat",
    },
    "cifar10_ti500k": {
        "rst": "trades",
        "rst_mart": "mart",
        "rst_awp": "trades_awp",
        "rst_rwp": "trades_rwp",
        "rst_gairat": "gair_trades",
    },
}


def test_every_baseline_row_plans_training_and_evaluation(workdir):
    targets = [f"results/{s}/{m}/aa.json" for s, methods in BASELINES.items() for m in methods]
    text = dry_run(workdir, *targets)
    assert job_counts(text) == {
        "fetch": 2,
        "train": 3 * len(targets),
        "evaluate_shard": 12 * len(targets),
        "evaluate_gather": 3 * len(targets),
        "aggregate_seeds": len(targets),
    }
    for setting, methods in BASELINES.items():
        for method, name in methods.items():
            line = next(
                row
                for row in text.splitlines()
                if f"--out results/{setting}/{method}/seed0 " in row and "iseat --attempt 1 train " in row
            )
            assert f"method.name={name} " in line
            assert (
                ("model.depth=28" in line and "data.extra=data/ti500k" in line)
                if setting == "cifar10_ti500k"
                else ("model.depth=34" in line and "data.extra" not in line)
            )
            original_step = method in ("trades", "mart", "gairat", "fat", "rst", "rst_mart", "rst_gairat", "rst_rwp")
            assert ("attack.step_size=0.007" in line) == original_step
