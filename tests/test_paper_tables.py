"""Every row of the paper's Tab. 2 and 4-6 maps onto the right run and carries the paper's numbers."""

import json

import pytest

from iseat.results import grid as result_grid
from iseat.results import index as result_index
from iseat.results import tables as result_tables

# The paper's rows written out from its tables: (table, row label) -> (our method, clean, AutoAttack)
PAPER_ROWS = {
    ("tab2", "CIFAR-10 WRN28-10 + IDBH / IDBH + ISEAT"): ("cifar10_idbh_wrn28/iseat", (87.91, 0.18), (58.55, 0.14)),
    ("tab4", "CIFAR-10 WRN34-10 / AT (base model)"): ("cifar10/at", (85.90, 0.57), (53.42, 0.59)),
    ("tab4", "CIFAR-10 WRN34-10 / + input smoothing"): ("cifar10/ft_at_lsi", (84.10, 0.27), (54.50, 0.17)),
    ("tab4", "CIFAR-10 WRN34-10 / + weight smoothing"): ("cifar10/ft_at_awp", (86.04, 0.27), (55.26, 0.15)),
    ("tab4", "CIFAR-10 WRN34-10 / + both (ISEAT)"): ("cifar10/ft_iseat", (85.63, 0.13), (56.46, 0.14)),
    ("tab5", "CIFAR-10 WRN34-10 / AT (base model)"): ("cifar10/at", (85.90, 0.57), (53.42, 0.59)),
    ("tab5", "CIFAR-10 WRN34-10 / KL, unweighted"): ("cifar10/ft_iseat_kl", (85.07, 0.31), (56.08, 0.32)),
    ("tab5", "CIFAR-10 WRN34-10 / squared l2, unweighted"): ("cifar10/ft_iseat_uniform", (85.15, 0.70), (56.20, 0.19)),
    ("tab5", "CIFAR-10 WRN34-10 / squared l2, top-10 %"): ("cifar10/ft_iseat_top10", (85.53, 0.03), (56.36, 0.02)),
    ("tab5", "CIFAR-10 WRN34-10 / squared l2, linear (ISEAT)"): ("cifar10/ft_iseat", (85.63, 0.13), (56.46, 0.14)),
    ("tab6", "CIFAR-10 WRN34-10 / AT (base model)"): ("cifar10/at", (85.90, 0.57), (53.42, 0.59)),
    ("tab6", "CIFAR-10 WRN34-10 / + LSI"): ("cifar10/ft_iseat_lsi", (85.49, 0.50), (55.38, 0.32)),
    ("tab6", "CIFAR-10 WRN34-10 / + TRADE-AWP (squared l2)"): (
        "cifar10/ft_iseat_trade_awp",
        (85.52, 0.29),
        (55.82, 0.46),
    ),
    ("tab6", "CIFAR-10 WRN34-10 / + LSIW (ISEAT)"): ("cifar10/ft_iseat", (85.63, 0.13), (56.46, 0.14)),
}
RUNS = sorted({ours for ours, _, _ in PAPER_ROWS.values()})


def fake_results(root):
    """One aggregated aa.json per run, each with its own robust accuracy (0.40, 0.41, ...)."""
    entries = []
    for i, run in enumerate(RUNS):
        setting, method = run.split("/")
        folder = root / setting / method
        folder.mkdir(parents=True)
        stats = lambda v: {"mean": v, "std": 0.0, "values": [v]}
        (folder / "aa.json").write_text(
            json.dumps(
                {
                    "clean_accuracy": stats(0.8),
                    "robust_accuracy": stats(0.40 + i / 100),
                    "n_seeds": 1,
                    "n_examples": 100,
                }
            )
        )
        entries.append((setting, method, setting, str(folder)))
    return result_tables.parse_entries(entries)


def test_every_paper_row_of_tab2_and_tab4_to_6(tmp_path):
    tables = result_tables.build_rows(fake_results(tmp_path), {}, {})
    seen = set()
    for name in ("tab2", "tab4", "tab5", "tab6"):
        for row in tables[name]:
            key = (name, row.label)
            if key not in PAPER_ROWS:
                continue
            ours, clean, robust = PAPER_ROWS[key]
            cells = row.cells
            assert f"{row.entry.setting}/{row.entry.method}" == ours, key
            assert cells["rob"][0] == pytest.approx(100 * (0.40 + RUNS.index(ours) / 100)), key
            assert (cells["clean_paper"], cells["rob_paper"]) == (clean, robust), key
            seen.add(key)
    assert seen == set(PAPER_ROWS)
    # the AT rows of Tab. 4-6 are Tab. 2's base AT model, not a fine-tuned AT run
    assert not any(row.entry.method == "ft_at" for name in ("tab4", "tab5", "tab6") for row in tables[name])
    assert [len(tables[name]) for name in ("tab4", "tab5", "tab6")] == [4, 5, 4]


def test_table1_and_figure1b_beside_the_paper(tmp_path):
    from iseat.analysis import table1 as tables

    stats = {
        "av_sd": 0.5,
        "av_top10_mean": 2.0,
        "av_bottom10_mean": -0.2,
        "share_av_ge_1": 0.1,
        "share_av_le_0": 0.3,
        "av_mean": 0.4,
        "n_samples": 1000,
    }
    margin = {
        "av_statistics": stats,
        "attack": {"steps": 50},
        "eps_budget_l2_mean_delta_norm": 1.2,
        "share_within_budget": 0.25,
        "share_within_third_budget": 0.04,
        "share_beyond_double_budget": 0.55,
        "share_disordered": 0.1,
    }
    (tmp_path / "margin.json").write_text(json.dumps(margin))
    evaluation = {"accuracy": 0.8, "robustness": 0.45}
    rows = tables.table1_rows(
        [(name, tmp_path / "margin.json", evaluation) for name in ("at", "awp", "rst", "eq9", "mine")]
    )
    tables.write_table1(rows, tmp_path / "table1.md", margin)
    text = (tmp_path / "table1.md").read_text()
    # the paper's Tab. 1 (AV SD, top-10 %, bottom-10 %, % AV >= 1, % AV <= 0, robustness %)
    for name, values in {
        "at": "0.4670 | 1.5270 | -0.0100 | 12.38 | 12.14 | – | 51.78",
        "awp": "0.3510 | 1.1200 | -0.0220 | 5.52 | 19.74 | – | 54.68",
        "rst": "0.4430 | 1.3780 | -0.0110 | 9.96 | 20.87 | – | 57.68",
        "eq9": "0.1960 | 0.6330 | -0.0470 | 0.14 | 12.00 | – | 55.95",
    }.items():
        assert f"| {name} (paper) | {values} |" in text
    assert "| at: Δ ours − paper | 0.0330 | 0.4730 | -0.1900 | -2.38 | 17.86 | – | -6.78 |" in text
    assert "mine (paper)" not in text
    for statement, paper, ours in (
        ("within eps", 20, "25.00"),
        ("within eps/3", 5, "4.00"),
        ("unchanged at 2 eps", 50, "55.00"),
        ("maximal margin", 14, "10.00"),
    ):
        assert any(statement in line and f"| about {paper} | {ours} |" in line for line in text.splitlines())


def test_index_shows_the_grid_winner_beside_the_papers_choice(tmp_path):
    def run(name, pgd):
        folder = tmp_path / "results" / "cifar10" / "grid" / name
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(
            json.dumps({"best_selection_pgd_acc": pgd, "best_selection_clean_acc": 0.8})
        )
        return folder

    points = [(0.1, 0.007, run("a", 0.50)), (0.3, 0.005, run("b", 0.55))]
    winner = result_grid.select_grid(points, paper_choice=(0.1, 0.007), used="pinned")
    assert (winner["lam"], winner["gamma"], winner["used_by_final_runs"]) == (0.3, 0.005, "pinned")
    assert winner["paper_choice"] == {"lam": 0.1, "gamma": 0.007, "value": 0.50, "best_selection_clean_acc": 0.8}
    assert result_grid.select_grid(points, paper_choice=(0.01, 0.007))["paper_choice"]["value"] is None
    path = tmp_path / "results" / "cifar10" / "grid" / "winner.json"
    path.write_text(json.dumps(winner))
    result_index.write_index(
        tmp_path / "results" / "README.md", winners=[str(path)], setting_labels={"cifar10": "CIFAR-10"}
    )
    index = (tmp_path / "results" / "README.md").read_text()
    assert "| CIFAR-10 | 0.3 | 0.005 | 55.00 | 0.1, 0.007 | 50.00 | paper's choice | 2 |" in index


def test_tab4_time_column_beside_the_papers(tmp_path):
    timing = {
        "rows": [
            {"method": "AT", "path": "fast", "ratio_to_at": 1.0},
            {"method": "+LSI", "path": "fast", "ratio_to_at": 1.11},
            {"method": "+AWP", "path": "fast", "ratio_to_at": 1.08},
            {"method": "ISEAT", "path": "fast", "ratio_to_at": 1.2},
            {"method": "ISEAT", "path": "straightforward", "ratio_to_at": 1.5},
        ]
    }
    result_tables.write_tables(tmp_path, fake_results(tmp_path / "results"), {}, {}, timing)
    text = (tmp_path / "tab4.md").read_text()
    assert "time / AT (ours) | time / AT (paper) | s/batch (paper) |" in text
    # the paper: AT 0.253 s, + input smoothing 0.268, + weight smoothing 0.277, both 0.298 per batch
    for label, ours, paper_ratio, seconds in (
        ("AT (base model)", "1.000", "1.000", "0.253"),
        ("+ input smoothing", "1.110", "1.059", "0.268"),
        ("+ weight smoothing", "1.080", "1.095", "0.277"),
        ("+ both (ISEAT)", "1.200", "1.178", "0.298"),
    ):
        line = next(row for row in text.splitlines() if f"/ {label} |" in row)
        assert line.endswith(f"| {ours} | {paper_ratio} | {seconds} |"), line
    assert "time / AT" not in (tmp_path / "tab5.md").read_text()


def test_table1_rows_found_by_label():
    from iseat.analysis.table1 import paper_table1_key

    assert [paper_table1_key(label) for label in ("AT", "AWP", "RST", "Eq. 9 (eta = 1)", "AT + Eq. 9", "ISEAT")] == [
        "at",
        "awp",
        "rst",
        "eq9",
        "eq9",
        None,
    ]
