"""`iseat plan`: the GPU-hours of a tiny workflow config equal a hand computation of the documented cost model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iseat.workflow.jobs import Evaluation, workflow_jobs
from iseat.workflow.plan import format_plan, packing
from iseat.workflow.step_times import StepTimes

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")

# One setting, two from-scratch methods, one seed, on the digits set (1,497 training images).
TINY = {
    "results_dir": "RESULTS",
    "data_root": "DATA",
    "seeds": [0],
    "fetch": {"digits": {}},
    "train": {
        "data": {"selection": "validation", "validation_size": 200, "num_workers": 0},
        "model": {"arch": "small_cnn"},
        "training": {"epochs": 2, "lr": 0.05, "lr_milestones": [0.5]},
        "evaluation": {"max_samples": 100},
    },
    "finetune": {"checkpoint": "best", "train": {"training": {"epochs": 1}}},
    "evaluation": {"autoattack": {"n_ex": 20}, "pgd": {"steps": 20, "n_ex": 50}},
    "settings": {
        "tiny": {
            "label": "tiny",
            "paper": "cifar10",
            "dataset": "digits",
            "methods": ["at", "iseat"],
            "train": {"attack": {"eps": "8/255", "step_size": "2/255"}},
            "tuned": {"lam": 0.1, "gamma": 0.001, "lam_warmup": True, "source": "pinned"},
        }
    },
}
STEP = {"AT": 1.0, "+LSI": 1.5, "+AWP": 2.0, "ISEAT": 3.0}  # seconds per step at batch 128
AA_S_PER_IMAGE = 0.5


def hand_computed_trainings() -> tuple[float, float]:
    """Seconds of TINY's two trainings (AT, ISEAT) in the cost model of iseat.workflow.plan, written out."""
    images = 1497 - 200  # training images per epoch: the validation hold-out is not trained on
    batches = images / 128
    selection = 100 / 128 * STEP["AT"] * (10 + 1) / (10 + 1)  # PGD-10 on 100 validation images, per epoch
    at = 2 * batches * STEP["AT"] + 2 * selection
    # lambda [0, 0.1] per lr stage, gamma 0.001: epoch 0 is +AWP, epoch 1 (after the milestone) is ISEAT
    iseat = batches * STEP["+AWP"] + batches * STEP["ISEAT"] + 2 * selection
    return at, iseat


def hand_computed_hours() -> float:
    """The cost model of iseat.workflow.plan written out for TINY."""
    at, iseat = hand_computed_trainings()
    autoattack = 20 * AA_S_PER_IMAGE
    pgd = 50 / 128 * STEP["AT"] * (20 + 1) / (10 + 1)  # PGD-20 on 50 test images, from the AT step (PGD-10)
    return (at + iseat + 2 * autoattack + 2 * pgd) / 3600


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
@pytest.mark.parametrize("shards", [1, 2])
def test_plan_gpu_hours_equal_hand_computation(tmp_path, shards):
    config = json.loads(
        json.dumps(TINY).replace("RESULTS", str(tmp_path / "results")).replace("DATA", str(tmp_path / "data"))
    )
    config["evaluation"]["shards"] = shards
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    steps = [f"--step-time=small_cnn:{method}={seconds}" for method, seconds in STEP.items()]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iseat",
            "plan",
            "--configfile",
            str(tmp_path / "tiny.yaml"),
            *steps,
            f"--aa-s-per-image=small_cnn={AA_S_PER_IMAGE}",
            "--json",
            str(tmp_path / "plan.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "plan.json").read_text())
    tiny = result["per_setting"]["tiny"]
    assert tiny["gpu_hours"] == pytest.approx(hand_computed_hours(), rel=1e-12)
    assert result["total"]["gpu_hours"] == pytest.approx(hand_computed_hours(), rel=1e-12)
    # 2 trainings and 4 evaluations (each as `shards` GPU jobs) ask for a GPU; the gathers of sharded
    # evaluations, the seed aggregations (2 methods x 2 evaluations) and the setting's training figure do not
    gpu_jobs, jobs = 2 + 4 * shards, 2 + 4 * shards + 4 * (shards > 1) + 4 + 1
    assert tiny["gpu_jobs"] == gpu_jobs and tiny["jobs"] == jobs
    assert result["total"]["not_estimated"] == 0
    assert f"| tiny | {jobs} | {gpu_jobs} |" in out.stdout


def test_step_times_from_a_gpu_check_report(tmp_path):
    report = {
        "environment": {"gpu": "Some GPU"},
        "sections": {
            "step/wide_resnet/fp32": {
                "batch_size": 64,
                "rows": [
                    {"method": "AT", "path": "fast", "median_s": 0.1},
                    {"method": "ISEAT", "path": "fast", "median_s": 0.12},
                    {"method": "ISEAT", "path": "memory_lean", "median_s": 0.14},
                ],
            },
            "step/wide_resnet/bf16": {"batch_size": 128, "rows": [{"method": "AT", "path": "fast", "median_s": 0.05}]},
            "training": {"arch": "preact_resnet18", "autoattack_seconds": 50.0, "n_examples": 500},
        },
    }
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(report))
    times = StepTimes.from_gpu_check(path)
    assert times.step("wide_resnet", {}, "AT") == pytest.approx(0.2)  # measured at batch 64, scaled to 128
    assert times.step("wide_resnet", {"memory_lean": True}, "ISEAT") == pytest.approx(0.28)
    assert times.step("wide_resnet", {"precision": "bf16"}, "AT") == pytest.approx(0.05)
    assert times.step("wide_resnet", {"precision": "bf16"}, "ISEAT") == pytest.approx(0.24)  # fp32 when not measured
    assert times.aa_s_per_image == {"preact_resnet18": 0.1}
    with pytest.raises(ValueError, match="no step time for model 'preact_resnet18'"):
        times.step("preact_resnet18", {}, "AT")


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
@pytest.mark.parametrize("cluster", [None, {"gpus_per_node": 2}], ids=["one run per job", "packed"])
def test_jobs_come_from_the_dag_with_the_run_configs_of_the_builder(tmp_path, monkeypatch, cluster):
    """TINY's DAG of one training's result: fetch, the training (its config as iseat train would merge it),
    both its evaluations (2 shards each and their gathers) and their seed aggregations; a packed training
    (a job group) is the same training."""
    config = json.loads(
        json.dumps(TINY).replace("RESULTS", str(tmp_path / "results")).replace("DATA", str(tmp_path / "data"))
    )
    config["evaluation"]["shards"] = 2
    config["resources"] = {"train": {"gpu": 1}, "evaluate": {"gpu": 1}}
    if cluster:
        config["cluster"] = cluster
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(ROOT)
    run = tmp_path / "results" / "tiny" / "iseat" / "seed0"
    jobs = workflow_jobs(str(tmp_path / "results/tiny/iseat/aa.json"), [tmp_path / "tiny.yaml"])
    assert sorted(job.rule for job in jobs) == [
        "aggregate_seeds",
        "evaluate_gather",
        "evaluate_shard",
        "evaluate_shard",
        "fetch",
        "train",
    ]
    train = next(job for job in jobs if job.rule == "train")
    assert (train.setting, train.gpu, train.kind, train.group, Path(train.run)) == ("tiny", True, "train", "tiny", run)
    assert train.train["method"] == {**train.train["method"], "name": "iseat", "lam": [0.0, 0.1], "gamma": 0.001}
    assert train.train["model"]["arch"] == "small_cnn" and train.train["training"]["epochs"] == 2
    shards = [job.evaluation for job in jobs if job.rule == "evaluate_shard"]
    assert shards == [Evaluation("autoattack", 20, fraction=0.5)] * 2 and all(
        job.gpu for job in jobs if job.rule == "evaluate_shard"
    )
    gather = next(job for job in jobs if job.rule == "evaluate_gather")
    assert gather.evaluation.gather and not gather.gpu and Path(gather.run) == run
    assert {job.group for job in jobs if job.kind == "other"} == {"tiny", "(shared)"}  # aggregate_seeds, fetch
    with pytest.raises(ValueError, match=r"^the DAG of results/nowhere.json could not be built: .*nowhere"):
        workflow_jobs("results/nowhere.json", [tmp_path / "tiny.yaml"])


@pytest.mark.parametrize(
    "method, rows",
    [
        # TRADES' KL term back-propagates the clean graph, as smoothing does; AWP joins after its warm-up (10 epochs)
        ("trades_awp", ["+LSI"] * 9 + ["ISEAT"] * 3),
        ("mart", ["+LSI"] * 12),
        ("rwp", ["+AWP"] * 12),  # RWP: no warm-up, adversarial CE only
        ("gairat", ["AT"] * 12),
    ],
)
def test_baselines_cost_as_the_tab4_row_of_their_parts(method, rows):
    from iseat.training.config import load_config
    from iseat.workflow.plan import stage_rows

    cfg = load_config(None, [f"method.name={method}", "training.epochs=12"])
    assert stage_rows(cfg) == rows


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
def test_plan_data_parallel_gpu_hours_and_wall_clock(tmp_path):
    config = json.loads(
        json.dumps(TINY).replace("RESULTS", str(tmp_path / "results")).replace("DATA", str(tmp_path / "data"))
    )
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    steps = [f"--step-time=small_cnn:{method}={seconds}" for method, seconds in STEP.items()]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iseat",
            "plan",
            "--configfile",
            str(tmp_path / "tiny.yaml"),
            *steps,
            "--gpus-per-run",
            "4",
            "--scaling-efficiency",
            "0.8",
            "--json",
            str(tmp_path / "plan.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dp = json.loads((tmp_path / "plan.json").read_text())["data_parallel"]
    at, iseat = hand_computed_trainings()
    assert dp["train_gpu_hours"] == pytest.approx((at + iseat) / 3600 / 0.8, rel=1e-12)
    assert dp["longest_train_wall_hours"] == pytest.approx(max(at, iseat) / 3600 / 3.2, rel=1e-12)
    assert "Trainings on 4 GPUs each" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "iseat", "plan", "--step-time=small_cnn=0.1", "--gpus-per-run", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--gpus-per-run" in bad.stderr and "Traceback" not in bad.stderr


def test_an_eps_sweep_costs_one_pgd_pass_per_positive_budget():
    """`iseat evaluate --eps-sweep 0 8/255 64/255 --pgd-steps 5 --n-ex 256`: two PGD-5 passes over 256 images,
    each (5 + 1) / (10 + 1) of the AT step (PGD-10) per batch of 128."""
    from iseat.training.config import DEFAULTS
    from iseat.workflow.plan import evaluation_seconds

    times = StepTimes()
    times.add("small_cnn=2.0")
    cfg = {**DEFAULTS, "model": {"arch": "small_cnn"}, "data": {**DEFAULTS["data"], "dataset": "digits"}}
    sweep = Evaluation("sweep", 256, 5, ("0", "8/255", "64/255"))
    assert evaluation_seconds(sweep, cfg, times) == pytest.approx(2 * 256 / 128 * 2.0 * 6 / 11, rel=1e-12)


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
def test_a_config_mistake_is_one_line_naming_its_key(tmp_path, monkeypatch, capsys):
    from iseat.cli import main

    config = {**TINY, "settings": {"tiny": {**TINY["settings"]["tiny"], "methods": ["at", "nope"]}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--configfile", str(tmp_path / "bad.yaml"), "--step-time", "small_cnn=0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "config: settings.tiny.methods[1]: unknown method 'nope'" in err and len(err.splitlines()) == 1


def test_packing_holds_a_jobs_gpus_until_its_longest_member_ends():
    packed = packing([3.0, 1.0, 2.0], gpus_per_node=2)  # jobs [3, 1] and [2]: 2 GPUs each
    assert packed == {
        "gpus_per_node": 2,
        "jobs": 2,
        "train_gpu_hours": 10.0,  # 2 x 3 + 2 x 2
        "idle_gpu_hours": 4.0,  # 10 - (3 + 1 + 2)
        "longest_job_wall_hours": 3.0,
        "serial_wall_hours": 5.0,
    }
    assert packing([3.0, 1.0], gpus_per_node=1)["train_gpu_hours"] == 4.0  # unpacked: the trainings' own
    assert packing([], gpus_per_node=4)["jobs"] == 0
    total = {"jobs": 0, "gpu_jobs": 0, "train_hours": 0.0, "evaluate_hours": 0.0, "gpu_hours": 0.0, "not_estimated": 0}
    text = format_plan({"step_times": "given", "per_setting": {}, "total": total, "packing": packed})
    assert "Trainings packed 2 to a job (2 jobs): 10.0 training GPU-hours held, 4.0 of them idle" in text
