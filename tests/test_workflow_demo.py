"""The demo configuration end to end: `snakemake --profile profiles/local --configfile config/demo.yaml`
on the CPU, then a changed hyper-parameter replans exactly the runs it affects and their dependents.

Takes a few minutes on two cores (`pytest -m slow`)."""

import csv
import json
import time

import pytest
import yaml
from test_workflow_dag import job_counts
from workflow_run import ROOT, SNAKEMAKE, scratch_workdir
from workflow_run import snakemake as run_workflow

# beside_slurm: scripts/test.sh runs it in a session of its own, beside the SLURM tests' cluster waits
pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed"),
    pytest.mark.slow,
    pytest.mark.beside_slurm,
]

DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


def snakemake(workdir, configfile, *args, timeout=1800):
    return run_workflow(
        workdir, "--profile", "profiles/local", "--cores", "2", *args, "--configfile", str(configfile), timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = scratch_workdir(tmp_path_factory.mktemp("demo"))
    start = time.monotonic()
    out = snakemake(workdir, ROOT / "config" / "demo.yaml")
    wall = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-5000:]
    print(f"demo: {wall:.0f} s wall")
    return workdir, workdir / DEMO["results_dir"]


def test_demo_produces_results_tables_figures_and_av_logs(demo):
    _, results = demo
    for name, setting in DEMO["settings"].items():
        for method in setting["methods"]:
            for evaluation in ("aa", "pgd"):
                agg = json.loads((results / name / method / f"{evaluation}.json").read_text())
                assert agg["n_seeds"] == len(setting.get("seeds", DEMO["seeds"]))
                assert 0 <= agg["robust_accuracy"]["mean"] <= agg["clean_accuracy"]["mean"] <= 1
            aa = json.loads((results / name / method / "aa.json").read_text())
            assert aa["attack"] == "autoattack-apgd-pair" and aa["n_examples"] == 300
            for seed in setting.get("seeds", DEMO["seeds"]):
                run = results / name / method / f"seed{seed}"
                for f in (
                    "summary.json",
                    "best.pt",
                    "last.pt",
                    "metrics.jsonl",
                    "av_log.h5",
                    "config.yaml",
                    "aa.json",
                    "aa.per_sample.csv",
                    "pgd.json",
                    "pgd.per_sample.csv",
                ):
                    assert (run / f).is_file(), run / f
    winner = json.loads((results / "digits" / "grid" / "winner.json").read_text())
    assert len(winner["points"]) == 4 and (winner["lam"], winner["gamma"]) in {
        (p["lam"], p["gamma"]) for p in winner["points"]
    }
    assert (winner["paper_choice"]["lam"], winner["paper_choice"]["gamma"], winner["used_by_final_runs"]) == (
        0.1,
        0.007,
        "grid",
    )
    swa_run = results / "digits" / "iseat_swa" / "seed0"  # SWA: averaged weights, BatchNorm re-estimated, selected
    assert (swa_run / "swa_best.pt").is_file() and "swa_selection_pgd_acc" in (swa_run / "metrics.jsonl").read_text()
    tuned = yaml.safe_load((results / "digits" / "iseat" / "tuned.yaml").read_text())
    assert tuned["method"] == {"lam": [0.0, winner["lam"]], "gamma": winner["gamma"]}
    resolved = yaml.safe_load((results / "digits" / "iseat" / "seed0" / "config.yaml").read_text())
    assert resolved["method"]["gamma"] == winner["gamma"]
    for name in ("tab2", "tab3", "tab4", "tab5", "tab6", "all_results"):
        for ext in ("md", "csv", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert "86.02 ± 0.36" in (results / "tables" / "tab2.md").read_text()  # the paper's ISEAT beside ours
    for png in (
        "results_vs_paper",
        "training_digits",
        "training_digits_svhn",
        "grid_digits",
        "curves_digits",
        "curves_digits_svhn",
    ):
        assert (results / "figures" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    index = (results / "README.md").read_text()
    assert "tables/tab2.md" in index and "figures/grid_digits.png" in index and "av_log.h5" in index
    assert (results / "logs" / "train" / "digits" / "at" / "seed0.log").is_file()


def test_demo_models_learn(demo):
    """The demo's numbers mean something: AT is at least 80 % accurate on all 300 test images, and every
    method stays well above chance (10 %) under PGD-20 and AutoAttack's APGD pair there."""
    _, results = demo
    at = json.loads((results / "digits" / "at" / "seed0" / "pgd.json").read_text())
    assert at["n_examples"] == 300 and at["clean_accuracy"] >= 0.8
    for name, setting in DEMO["settings"].items():
        for method in setting["methods"]:
            for evaluation in ("pgd", "aa"):
                run = json.loads((results / name / method / "seed0" / f"{evaluation}.json").read_text())
                assert run["n_examples"] == 300
                assert run["robust_accuracy"] >= 0.5, (name, method, evaluation, run["robust_accuracy"])


def test_demo_curves_fall_to_zero_and_no_model_is_flagged(demo):
    """Every demo model's eps sweep falls with eps and reaches ~0 % at 64/255: no gradient-masking flag on any
    evaluation, so the tables' masking column is empty."""
    _, results = demo
    for name, setting in DEMO["settings"].items():
        for method in setting["methods"]:
            sweep = json.loads((results / name / method / "seed0" / "sweep.json").read_text())
            assert [round(255 * p["eps"]) for p in sweep["curve"]] == [0, 2, 4, 8, 16, 64]
            assert sweep["curve"][-1]["robust_accuracy"] <= 0.05, (name, method, sweep["curve"])
            for evaluation in ("aa", "pgd", "sweep"):
                flags = json.loads((results / name / method / f"{evaluation}.json").read_text())["masking_flags"]
                assert flags == [], (name, method, evaluation, flags)
    assert "Flagged:" not in (results / "tables" / "all_results.md").read_text()
    assert "figures/curves_digits.png" in (results / "README.md").read_text()


def test_report_shows_the_tables_figures_and_analysis(demo):
    workdir, results = demo
    report = results / "report.html"
    out = snakemake(workdir, ROOT / "config" / "demo.yaml", "--report", str(report))
    assert out.returncode == 0, out.stderr[-3000:]
    html = report.read_text()
    for name in (
        "tab2.md",
        "tab4.csv",
        "all_results.tex",
        "significance.csv",
        "results_vs_paper.png",
        "training_digits.png",
        "grid_digits.png",
        "curves_digits.png",
        "Section 3 analysis",
        "table1.md",
        "McNemar",
    ):  # a caption
        assert name in html, name
    # every seed's per-sample results reached the paired comparisons (the demo has one seed)
    rows = list(csv.DictReader((results / "tables" / "significance.csv").open()))
    assert {("iseat", "at"), ("trades", "at"), ("iseat", "trades"), ("iseat", "mart")} <= {
        (r["method"], r["reference"]) for r in rows
    }
    assert all(r["seeds"] == "0" and r["mcnemar_p"] and r["significant"] in ("0", "1") for r in rows), rows


def test_changed_hyperparameter_reruns_only_what_it_affects(demo, tmp_path):
    workdir, _ = demo
    out = snakemake(workdir, ROOT / "config" / "demo.yaml", "-n")
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    cfg["settings"]["digits_svhn"]["tuned"]["gamma"] = 0.02
    changed = tmp_path / "demo_changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    out = snakemake(workdir, changed, "-n")
    assert out.returncode == 0, out.stderr[-3000:]
    counts = job_counts(out.stdout + out.stderr)
    assert counts == {
        "train": 1,
        "evaluate": 2,
        "aggregate_seeds": 2,
        "tables": 1,
        "figure_results": 1,
        "figure_training": 1,
        "index": 1,
        "all": 1,
        "evaluate_sweep": 1,
        "aggregate_sweep": 1,
        "figure_curves": 1,
    }, counts
    assert "results/demo/digits_svhn/iseat/seed0" in out.stdout
