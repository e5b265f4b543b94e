"""`iseat aggregate`: seed statistics, grid-search selection, the paper's tables, figures and the
results index (the last steps of the workflow; each subcommand is one rule)."""

from __future__ import annotations

from pathlib import Path

from iseat.cli import UserError
from iseat.results.grid import GRID_METRIC, write_tuned, write_winner
from iseat.results.seeds import read_json, write_seed_summary

# The tables, figures and index are imported by the subcommand that writes them: they need scipy or
# matplotlib, seconds to import, and `seeds` runs once per result of the workflow.


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    add_seeds_arguments(sub.add_parser("seeds", help="mean, std and per-seed values of one (setting, method)"))
    add_grid_arguments(sub.add_parser("grid", help="select the lambda/gamma grid winner on the validation split"))
    add_tuned_arguments(
        sub.add_parser("tuned", help="the grid winner as a train-config fragment for `iseat train --config`")
    )
    add_tables_arguments(
        sub.add_parser("tables", help="Tab. 2-6 and all results as Markdown, CSV and LaTeX, and the paired comparisons")
    )
    add_figure_arguments(sub)
    add_index_arguments(
        sub.add_parser("index", help="the results index page (Markdown) linking tables, figures and runs")
    )


def add_seeds_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="EVAL_JSON", help="aa.json or pgd.json of each seed's run")
    p.add_argument("--out", required=True, help="aggregated JSON, e.g. results/cifar10/iseat/aa.json")


def add_grid_arguments(p) -> None:
    p.add_argument(
        "--point",
        nargs=3,
        action="append",
        required=True,
        metavar=("LAM", "GAMMA", "RUN_DIR"),
        help="one grid point and its fine-tuned run folder (repeat)",
    )
    p.add_argument("--metric", default=GRID_METRIC, help="summary.json key to maximise")
    p.add_argument("--out", required=True, help="winner.json (winner and every point's evidence)")
    p.add_argument(
        "--paper-choice", nargs=2, metavar=("LAM", "GAMMA"), help="the paper's tuned pair, scored beside the winner"
    )
    p.add_argument("--used", choices=["pinned", "grid"], help="which pair the final runs take")


def add_tuned_arguments(p) -> None:
    p.add_argument("--winner", required=True, help="winner.json of `iseat aggregate grid`")
    p.add_argument("--keys", nargs="+", choices=["lam", "gamma"], required=True, help="values the method takes")
    p.add_argument("--lam-warmup", action="store_true", help="lambda = 0 in the first lr stage, then the winner")
    p.add_argument("--out", required=True, help="YAML fragment, e.g. results/cifar10/iseat/tuned.yaml")


def add_label_arguments(p) -> None:
    p.add_argument("--setting-label", action="append", default=[], metavar="SETTING=LABEL")
    p.add_argument("--method-label", action="append", default=[], metavar="METHOD=LABEL")


def add_entry_arguments(p) -> None:
    p.add_argument(
        "--entry",
        nargs=4,
        action="append",
        default=[],
        metavar=("SETTING", "METHOD", "PAPER", "DIR"),
        help="an aggregated result folder (holding aa.json, pgd.json) and the paper setting its "
        "rows compare with ('-' for none); repeat",
    )
    add_label_arguments(p)


def add_tables_arguments(p) -> None:
    add_entry_arguments(p)
    p.add_argument(
        "--out-dir", required=True, help="folder of tab2..tab6 and all_results .md/.csv/.tex and significance.csv/.md"
    )
    p.add_argument("--step-timing", help="JSON of `iseat benchmark step --out`: Tab. 4's time column")


def add_figure_arguments(sub) -> None:
    p = sub.add_parser("figure-results", help="bar chart: ours beside the paper's numbers")
    add_entry_arguments(p)
    p.add_argument("--out", required=True, help="PNG file")

    p = sub.add_parser("figure-curves", help="robustness curves of one setting: accuracy against eps per method")
    add_entry_arguments(p)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="PNG file")

    p = sub.add_parser("figure-training", help="per-epoch curves (robustness, accuracy, loss, AV SD)")
    p.add_argument(
        "--run",
        nargs=2,
        action="append",
        required=True,
        metavar=("LABEL", "RUN_DIR"),
        help="a run folder with metrics.jsonl; runs with the same label are averaged (repeat)",
    )
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="PNG file")

    p = sub.add_parser("figure-grid", help="heat map of the grid search")
    p.add_argument("--winner", required=True, help="winner.json of `iseat aggregate grid`")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="PNG file")


def add_index_arguments(p) -> None:
    p.add_argument("--out", required=True, help="e.g. results/README.md")
    for name, what in (
        ("tables", "table files"),
        ("figures", "figure files"),
        ("results", "aggregated JSON files"),
        ("winners", "grid winner.json files"),
        ("extra", "further outputs to link (analysis)"),
    ):
        p.add_argument(f"--{name}", nargs="*", default=[], help=what)
    add_label_arguments(p)


def labels(pairs, flag) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"{flag} {pair!r}: expected NAME=LABEL")
        name, label = pair.split("=", 1)
        out[name] = label
    return out


def as_float(text, what) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{what}: {text!r} is not a number") from None


def run(args) -> int:
    return {
        "seeds": run_seeds,
        "grid": run_grid,
        "tuned": run_tuned,
        "tables": run_tables,
        "figure-results": run_figure_results,
        "figure-curves": run_figure_curves,
        "figure-training": run_figure_training,
        "figure-grid": run_figure_grid,
        "index": run_index,
    }[args.what](args)


def run_seeds(args) -> int:
    result = write_seed_summary(args.inputs, args.out)
    print(
        f"{args.out}: {result['n_seeds']} seeds, robust {100 * result['robust_accuracy']['mean']:.2f} ± "
        f"{100 * result['robust_accuracy']['std']:.2f} %, clean {100 * result['clean_accuracy']['mean']:.2f} %"
    )
    return 0


def run_grid(args) -> int:
    points = [
        (as_float(lam, "--point LAM"), as_float(gamma, "--point GAMMA"), run_dir) for lam, gamma, run_dir in args.point
    ]
    paper = None if args.paper_choice is None else [as_float(v, "--paper-choice") for v in args.paper_choice]
    winner = write_winner(points, args.out, args.metric, paper, args.used)
    print(
        f"{args.out}: lambda={winner['lam']:g} gamma={winner['gamma']:g} "
        f"({args.metric}={winner['value']:.4f}, {len(points)} points)"
    )
    for note in winner["notes"]:
        print(f"warning: {note}")
    return 0


def run_tuned(args) -> int:
    print(f"{args.out}: {write_tuned(args.winner, args.keys, args.lam_warmup, args.out)}")
    return 0


def entries(args):
    from iseat.results.tables import parse_entries

    if not args.entry:
        raise UserError("--entry: give at least one aggregated result")
    return (
        parse_entries(args.entry),
        labels(args.setting_label, "--setting-label"),
        labels(args.method_label, "--method-label"),
    )


def run_tables(args) -> int:
    from iseat.results.tables import write_tables

    timing = read_json(args.step_timing) if args.step_timing else None
    for path in write_tables(args.out_dir, *entries(args), timing):
        print(path)
    return 0


def run_figure_results(args) -> int:
    from iseat.results.figures import figure_results

    figure_results(args.out, *entries(args))
    print(args.out)
    return 0


def run_figure_curves(args) -> int:
    from iseat.results.figures import figure_curves

    entry_list, _, method_labels = entries(args)
    figure_curves(args.out, entry_list, method_labels, args.title)
    print(args.out)
    return 0


def run_figure_training(args) -> int:
    from iseat.results.figures import figure_training

    figure_training(args.out, [(label, Path(run_dir)) for label, run_dir in args.run], args.title)
    print(args.out)
    return 0


def run_figure_grid(args) -> int:
    from iseat.results.figures import figure_grid

    figure_grid(args.out, read_json(args.winner), args.title)
    print(args.out)
    return 0


def run_index(args) -> int:
    from iseat.results.index import write_index

    write_index(
        args.out,
        args.tables,
        args.figures,
        args.results,
        args.winners,
        args.extra,
        labels(args.setting_label, "--setting-label"),
        labels(args.method_label, "--method-label"),
    )
    print(args.out)
    return 0
