"""workflow/rules/analysis.smk: the DAG of a small analysis block (dry run) and its config checks."""

import pytest
import yaml
from workflow_run import SNAKEMAKE, scratch_workdir, snakemake

pytestmark = [pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed"), pytest.mark.slow]


def analysis_config(results):
    return {
        "results_dir": str(results),
        "seeds": [0],
        "settings": {
            "digits_analysis": {
                "dataset": "digits",
                "methods": ["at", "at_awp"],
                "train": {"model": {"arch": "small_cnn"}, "training": {"epochs": 1}},
                "finetune": {"base": "at"},
            }
        },
        "analysis": {
            "runs": [
                {"name": "at", "label": "AT", "setting": "digits_analysis", "method": "at"},
                {"name": "awp", "label": "AWP", "setting": "digits_analysis", "method": "at_awp"},
                {"name": "eq9", "label": "Eq. 9", "eta": 1.0},
            ],
            "table1": ["at", "awp", "eq9"],
            "av_figure": ["at"],
            "margin": {"n": 100, "pgd_steps": 5},
            "landscape": {"runs": ["at"], "pick": 1, "steps": 5},
            "eta_sweep": {
                "setting": "digits_analysis",
                "base": "at",
                "etas": [0, 0.5, 1.0],
                "test_av": {"n_examples": 50, "batch_size": 64},
                "train": {"training": {"epochs": 1, "lr": 0.01, "lr_milestones": [0.5]}},
            },
        },
    }


def dry_run(tmp_path, cfg, target):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return snakemake(scratch_workdir(tmp_path / "workdir"), target, "-n", "-p", "--configfile", str(path), timeout=300)


def test_dry_run_wires_every_study(tmp_path):
    results = tmp_path / "results"
    out = dry_run(tmp_path, analysis_config(results), str(results / "analysis" / "README.md"))
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    text = out.stdout + out.stderr
    a = f"{results}/analysis"
    run = f"{results}/digits_analysis"
    assert (
        f"iseat --attempt 1 analyse margin --checkpoint {run}/at/seed0/best.pt --out {a}/at/margin "
        "--split train --n 100" in text
    )
    assert f"iseat --attempt 1 analyse margin --checkpoint {a}/eta_sweep/eta1/best.pt --out {a}/eq9/margin" in text
    assert (
        f"iseat --attempt 1 analyse landscape --checkpoint {run}/at/seed0/best.pt --out {a}/at/landscape "
        f"--margins {a}/at/margin/margins.npz --split train --pick 1" in text
    )
    assert f"iseat analyse av-figure --log {run}/at/seed0/av_log.h5 --out {a}/fig1a_at.png" in text
    assert f"--entry 'Eq. 9' {a}/eq9/margin/margin.json {a}/eta_sweep/eta1/pgd.json" in text
    assert f"--entry AWP {a}/awp/margin/margin.json {run}/at_awp/seed0/pgd.json" in text
    for eta in ("0", "0.5", "1"):
        assert f"iseat --attempt 1 train --out {a}/eta_sweep/eta{eta} " in text
        assert (
            f"iseat --attempt 1 analyse vulnerability --checkpoint {a}/eta_sweep/eta{eta}/best.pt --split test "
            f"--out {a}/eta_sweep/eta{eta}/test_av.json --batch-size 64 --n-examples 50 --device cuda "
            "--no-progress"
        ) in text
    assert text.count("rule analysis_eta_vulnerability:") == 3
    assert "method.eta=0.5 method.name=at_eq9" in text
    assert f"training.finetune_from={run}/at/seed0/best.pt" in text
    assert f"iseat analyse eta-sweep --runs {a}/eta_sweep/eta0 {a}/eta_sweep/eta0.5 {a}/eta_sweep/eta1 " in text
    assert "--test-av " + " ".join(f"{a}/eta_sweep/eta{eta}/test_av.json" for eta in ("0", "0.5", "1")) in text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["analysis"]["table1"].append("nope"), "analysis.table1: 'nope' is not a name in analysis.runs"),
        (lambda c: c["analysis"]["runs"][1].update(method="iseat"), "analysis.runs[1].method: 'iseat' is not a method"),
        (lambda c: c["analysis"].pop("eta_sweep"), "analysis.runs[2].eta: needs an analysis.eta_sweep block"),
    ],
)
def test_config_mistakes_are_reported(tmp_path, change, message):
    cfg = analysis_config(tmp_path / "results")
    change(cfg)
    out = dry_run(tmp_path, cfg, str(tmp_path / "results" / "analysis" / "README.md"))
    assert out.returncode != 0 and message in out.stdout + out.stderr
