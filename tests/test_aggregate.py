"""iseat.results and `iseat aggregate`: seed statistics, grid selection, tables, figures, index."""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from iseat import results
from iseat.cli import main
from iseat.results import figures as result_figures
from iseat.results import grid as result_grid
from iseat.results import index as result_index
from iseat.results import seeds as seed_stats
from iseat.results import tables as result_tables


def stamp(n=100, eps=8 / 255, attacks=("autoattack",)):
    """A protocol stamp as `iseat evaluate` writes it (written out, the fields of schemas/aa.schema.json)."""
    return {
        "version": 1,
        "threat_model": {"norm": "Linf", "eps": eps},
        "attacks": {a: {"eps": eps} for a in attacks},
        "seed": 0,
        "test_indices": {"count": n, "sha256": "a" * 64},
        "model_mode": "eval",
        "input_normalisation": "none",
        "checkpoint": {
            "file": "best.pt",
            "sha256": "b" * 64,
            "epoch": 3,
            "selected_by": "best",
            "selection_split": "validation",
        },
        "data": {"dataset": "cifar10", "sha256": "c" * 64},
        "versions": {"iseat": "0", "torch": "2", "pyautoattack": "1", "numpy": "1"},
    }


def write_eval(path: Path, clean, robust, protocol="autoattack-standard", n=100, eps=8 / 255):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "format": "iseat-robustness-v2",
                "clean_accuracy": clean,
                "robust_accuracy": robust,
                "protocol": protocol,
                "label": "AutoAttack (standard)",
                "n_examples": n,
                "stamp": stamp(n, eps, ["pgd" if protocol == "pgd" else "autoattack"]),
            }
        )
    )
    return path


def write_run(run: Path, pgd, clean, epochs=3, selection="validation"):
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(
        json.dumps({"best_epoch": epochs, "best_selection_pgd_acc": pgd, "best_selection_clean_acc": clean})
    )
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"selection": selection}}))
    rows = [
        {
            "epoch": e,
            "lr": 0.1,
            "train_loss": 2.0 / e,
            "selection_clean_acc": clean * e / epochs,
            "selection_pgd_acc": pgd * e / epochs,
            "av_sd": 0.3 + 0.1 * e,
        }
        for e in range(1, epochs + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_seed_statistics(tmp_path):
    paths = [
        write_eval(tmp_path / f"seed{s}" / "aa.json", c, r)
        for s, c, r in [(0, 0.86, 0.56), (1, 0.85, 0.57), (2, 0.87, 0.55)]
    ]
    out = seed_stats.aggregate_seeds(paths)
    assert out["seeds"] == [0, 1, 2] and out["n_seeds"] == 3 and out["n_examples"] == 100
    assert out["robust_accuracy"]["mean"] == pytest.approx(0.56)
    assert out["robust_accuracy"]["std"] == pytest.approx(0.01)  # sample std (n - 1)
    assert out["clean_accuracy"]["values"] == [0.86, 0.85, 0.87]
    assert out["attack"] == "autoattack-standard"
    assert [s["run_dir"] for s in out["per_seed"]] == [str(p.parent) for p in paths]
    single = seed_stats.aggregate_seeds(paths[:1])
    assert single["robust_accuracy"]["std"] == 0.0


def test_seed_statistics_refuse_bad_input(tmp_path):
    with pytest.raises(results.ResultsError, match="no such file"):
        seed_stats.aggregate_seeds([tmp_path / "seed0" / "aa.json"])
    bad = write_eval(tmp_path / "seed0" / "aa.json", 0.8, 56.0)
    with pytest.raises(results.ResultsError, match="robust_accuracy must be a fraction"):
        seed_stats.aggregate_seeds([bad])
    a = write_eval(tmp_path / "seed1" / "aa.json", 0.8, 0.5)
    b = write_eval(tmp_path / "seed2" / "pgd.json", 0.8, 0.5, protocol="pgd")
    with pytest.raises(results.ResultsError, match="mix attacks"):
        seed_stats.aggregate_seeds([a, b])


def test_grid_selects_on_the_criterion_with_tie_breaks(tmp_path):
    points = [
        (0.01, 0.005, write_run(tmp_path / "a", 0.50, 0.80)),
        (0.1, 0.005, write_run(tmp_path / "b", 0.55, 0.78)),
        (0.1, 0.007, write_run(tmp_path / "c", 0.55, 0.79)),  # same robustness, higher clean: wins
        (0.3, 0.009, write_run(tmp_path / "d", 0.40, 0.90)),
    ]
    winner = result_grid.select_grid(points)
    assert (winner["lam"], winner["gamma"]) == (0.1, 0.007)
    assert [p["rank"] for p in winner["points"]] == [1, 2, 3, 4]
    assert winner["points"][0]["run_dir"] == str(tmp_path / "c")
    assert winner["lam_values"] == [0.01, 0.1, 0.3] and winner["notes"] == []
    assert "validation" not in winner["criterion"] or "selection split" in winner["criterion"]
    write_run(tmp_path / "e", 0.9, 0.9, selection="test")
    assert result_grid.select_grid([(1.0, 0.01, tmp_path / "e")])["notes"]


def test_tuned_fragment_with_and_without_warmup():
    winner = {"lam": 0.1, "gamma": 0.007}
    assert result_grid.tuned_values(winner, ["lam", "gamma"], True) == {"method": {"lam": [0.0, 0.1], "gamma": 0.007}}
    assert result_grid.tuned_values(winner, ["lam"], False) == {"method": {"lam": 0.1}}
    assert result_grid.tuned_values(winner, ["gamma"], True) == {"method": {"gamma": 0.007}}


def make_results(root: Path):
    """Aggregated results of two settings: cifar10/{at,iseat} (paper rows) and a setting with no paper rows."""
    for setting, method, robust in [("cifar10", "at", 0.53), ("cifar10", "iseat", 0.565), ("toy", "at", 0.3)]:
        seeds = [
            write_eval(root / setting / method / f"seed{s}" / "aa.json", 0.86, robust + 0.01 * (s - 1))
            for s in range(3)
        ]
        pgds = [
            write_eval(root / setting / method / f"seed{s}" / "pgd.json", 0.86, robust + 0.02, "pgd") for s in range(3)
        ]
        for name, files in (("aa", seeds), ("pgd", pgds)):
            (root / setting / method / f"{name}.json").write_text(json.dumps(seed_stats.aggregate_seeds(files)))
    return [
        ("cifar10", "at", "cifar10", str(root / "cifar10" / "at")),
        ("cifar10", "iseat", "cifar10", str(root / "cifar10" / "iseat")),
        ("toy", "at", "-", str(root / "toy" / "at")),
    ]


def test_tables_put_ours_beside_the_paper(tmp_path):
    entries = result_tables.parse_entries(make_results(tmp_path / "results"))
    written = result_tables.write_tables(tmp_path / "tables", entries, {"toy": "Toy"}, {"at": "AT"})
    names = {p.name for p in written}
    for name in ("tab2", "tab3", "tab4", "tab5", "tab6", "all_results"):
        assert {f"{name}.md", f"{name}.csv", f"{name}.tex"} <= names
    md = (tmp_path / "tables" / "tab2.md").read_text()
    assert (
        "| CIFAR-10 WRN34-10 / ISEAT | 86.00 ± 0.00 | 86.02 ± 0.36 | -0.02 | 56.50 ± 1.00 | 56.54 ± 0.36 | -0.04 |"
        in md
    )
    assert "not run" in md  # AT-AWP has no result here
    rows = list(csv.DictReader((tmp_path / "tables" / "tab2.csv").open()))
    at = next(r for r in rows if r["method"] == "at" and r["setting"] == "cifar10")
    assert float(at["aa_mean"]) == pytest.approx(53.0) and float(at["aa_paper_mean"]) == 53.42
    assert float(at["aa_diff"]) == pytest.approx(53.0 - 53.42) and at["n_seeds"] == "3"
    tex = (tmp_path / "tables" / "tab3.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "56.15" in tex
    everything = (tmp_path / "tables" / "all_results.md").read_text()
    assert "Toy / AT" in everything and "30.00 ± 1.00" in everything


def test_figures_and_index(tmp_path):
    results = tmp_path / "results"
    entries = result_tables.parse_entries(make_results(results))
    result_figures.figure_results(results / "figures" / "results_vs_paper.png", entries, {}, {})
    runs = [
        ("at", write_run(results / "cifar10" / "at" / "seed0", 0.5, 0.8)),
        ("at", write_run(results / "cifar10" / "at" / "seed1", 0.52, 0.8)),
        ("iseat", write_run(results / "cifar10" / "iseat" / "seed0", 0.55, 0.8)),
    ]
    result_figures.figure_training(results / "figures" / "training_cifar10.png", runs, "CIFAR-10")
    points = [
        (lam, g, write_run(results / "cifar10" / "grid" / f"lam{lam}_gamma{g}", 0.5 + lam, 0.8))
        for lam in (0.01, 0.1)
        for g in (0.005, 0.007)
    ]
    (results / "cifar10" / "grid" / "winner.json").write_text(json.dumps(result_grid.select_grid(points)))
    result_figures.figure_grid(
        results / "figures" / "grid_cifar10.png", json.loads((results / "cifar10" / "grid" / "winner.json").read_text())
    )
    for png in (results / "figures").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    tables = result_tables.write_tables(results / "tables", entries, {}, {})
    result_index.write_index(
        results / "README.md",
        [str(t) for t in tables],
        sorted(map(str, (results / "figures").glob("*.png"))),
        [str(results / "cifar10" / "iseat" / "aa.json")],
        [str(results / "cifar10" / "grid" / "winner.json")],
        [],
        {"cifar10": "CIFAR-10 WRN34-10"},
        {"iseat": "ISEAT"},
    )
    index = (results / "README.md").read_text()
    assert "[tab2.csv](tables/tab2.csv)" in index and "![grid_cifar10](figures/grid_cifar10.png)" in index
    assert "[seed0](cifar10/iseat/seed0)" in index and "[AV log](cifar10/iseat/seed0/av_log.h5)" in index
    assert "| CIFAR-10 WRN34-10 | 0.1 |" in index


def test_cli_round_trip_and_user_errors(tmp_path, capsys):
    seeds = [write_eval(tmp_path / "r" / f"seed{s}" / "aa.json", 0.8, 0.5 + 0.01 * s) for s in range(2)]
    out = tmp_path / "r" / "aa.json"
    assert main(["aggregate", "seeds", "--out", str(out), *map(str, seeds)]) == 0
    assert json.loads(out.read_text())["n_seeds"] == 2
    runs = [write_run(tmp_path / "g" / f"p{i}", 0.5 + 0.1 * i, 0.8) for i in range(2)]
    winner = tmp_path / "g" / "winner.json"
    assert (
        main(
            [
                "aggregate",
                "grid",
                "--out",
                str(winner),
                "--point",
                "0.1",
                "0.005",
                str(runs[0]),
                "--point",
                "0.3",
                "0.007",
                str(runs[1]),
            ]
        )
        == 0
    )
    tuned = tmp_path / "tuned.yaml"
    assert (
        main(
            [
                "aggregate",
                "tuned",
                "--winner",
                str(winner),
                "--keys",
                "lam",
                "gamma",
                "--lam-warmup",
                "--out",
                str(tuned),
            ]
        )
        == 0
    )
    assert yaml.safe_load(tuned.read_text()) == {"method": {"lam": [0.0, 0.3], "gamma": 0.007}}
    assert main(["aggregate", "grid", "--out", str(winner), "--point", "x", "0.005", str(runs[0])]) == 2
    assert main(["aggregate", "seeds", "--out", str(out), str(tmp_path / "missing" / "aa.json")]) == 2
    assert (
        main(
            [
                "aggregate",
                "tables",
                "--out-dir",
                str(tmp_path / "t"),
                "--entry",
                "cifar10",
                "at",
                "cifar11",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "unknown paper setting 'cifar11'" in err and "'x' is not a number" in err and "no such file" in err
    assert not math.isnan(json.loads(winner.read_text())["value"])


def test_tables_name_the_opt_in_speed_options_a_run_used(tmp_path):
    from iseat.training.acceleration import describe

    root = tmp_path / "results"
    for seed, runtime in ((0, None), (1, {"precision": "bf16", "channels_last": True})):
        run = root / "cifar10" / "iseat" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"acceleration": describe(runtime)}))
    entries = result_tables.parse_entries(make_results(root))
    seeds = json.loads((root / "cifar10" / "iseat" / "aa.json").read_text())
    assert [s["speed_options"] for s in seeds["per_seed"]] == [[], ["bf16 autocast", "channels_last"], []]
    assert seeds["speed_options"] == ["bf16 autocast", "channels_last"]
    result_tables.write_tables(tmp_path / "tables", entries, {}, {})
    md = (tmp_path / "tables" / "tab2.md").read_text()
    assert "| cifar10/iseat (bf16 autocast, channels_last) |" in md
    assert (
        "Runs with opt-in speed options (not the fp32 default): CIFAR-10 WRN34-10 / ISEAT: bf16 autocast, "
        "channels_last."
    ) in md
    assert "cifar10/at |" in md and "cifar10/at (" not in md  # runs at the default name nothing
    assert "% Runs with opt-in speed options" in (tmp_path / "tables" / "tab2.tex").read_text()
