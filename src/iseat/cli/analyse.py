"""`iseat analyse STUDY`: the paper's Section 3 studies as files (`iseat.analysis`): margin (Eq. 7,
Fig. 1b, Fig. 2), loss landscape (Eq. 8, Fig. 3), AV statistics per epoch (Fig. 1a), the AV (Eq. 3) of every
sample of a split, the Eq. 9 eta sweep (Fig. 4), Tab. 1, and an index page linking them. Every figure is saved
with the arrays it plots."""

from __future__ import annotations

from pathlib import Path

from iseat.analysis.index_page import index_page

# The studies import torch: each is imported by the subcommand that runs it, so that `iseat analyse index`
# and `--help` stay light.

# the studies' parameters (ParameterError) and the flags that set them
FLAGS = {
    "out": "--out",
    "split": "--split",
    "eps": "--eps",
    "step_size": "--step-size",
    "pgd_steps": "--pgd-steps",
    "batch_size": "--batch-size",
    "n": "--n",
    "indices": "--indices",
    "log": "--log",
    "margins": "--margins",
    "steps": "--steps",
    "pick": "--pick",
    "n_examples": "--n-examples",
    "runs": "--runs",
    "evaluations": "--evals",
    "test_av": "--test-av",
}


def add_arguments(parser) -> None:
    studies = parser.add_subparsers(dest="study", required=True, metavar="STUDY")
    add_margin_arguments(studies.add_parser("margin", help="Eq. 7 margin of every sample; Fig. 1b and Fig. 2"))
    add_landscape_arguments(studies.add_parser("landscape", help="Eq. 8 loss landscape of chosen samples; Fig. 3"))
    add_av_figure_arguments(studies.add_parser("av-figure", help="Fig. 1a from an AV log"))
    add_vulnerability_arguments(
        studies.add_parser("vulnerability", help="Eq. 3 AV of every sample of a split under the run's training PGD")
    )
    add_eta_sweep_arguments(studies.add_parser("eta-sweep", help="Fig. 4 from fine-tuning runs with different eta"))
    add_table1_arguments(studies.add_parser("table1", help="Tab. 1: AV statistics and robustness per method"))
    index = studies.add_parser("index", help="a Markdown page linking the analysis outputs")
    index.add_argument("--out", type=Path, required=True)
    index.add_argument("--title", default="Section 3 analyses")
    index.add_argument("files", type=Path, nargs="+")


def add_av_figure_arguments(parser) -> None:
    parser.add_argument("--log", type=Path, required=True, help="the run's av_log.h5")
    parser.add_argument(
        "--out", type=Path, required=True, help="image (.png, .svg or .pdf); the data goes beside as .csv"
    )
    parser.add_argument("--title", default="")


def add_vulnerability_arguments(parser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (best.pt, last.pt)")
    parser.add_argument("--out", type=Path, required=True, help="summary (.json); the per-sample CSV goes beside it")
    parser.add_argument("--split", default="test", help="train or test (default test)")
    parser.add_argument("--n-examples", type=int, help="only the first N samples of the split (default all)")
    parser.add_argument("--data-root", help="data folder, when it moved since training (default: the run's data.root)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="seed of PGD's random start, if the run uses one")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def add_eta_sweep_arguments(parser) -> None:
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (config.yaml, av_log.h5)")
    parser.add_argument("--evals", type=Path, nargs="+", required=True, help="one evaluation JSON per run, same order")
    parser.add_argument(
        "--test-av", type=Path, nargs="+", help="one `analyse vulnerability` summary (test set) per run, same order"
    )
    parser.add_argument("--out", type=Path, required=True, help="image; the data goes beside as .csv")
    add_evaluation_keys(parser)


def add_table1_arguments(parser) -> None:
    parser.add_argument(
        "--entry",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "AV", "EVAL"),
        help="method name, AV source (margin.json of `analyse margin`, or an av_log.h5), evaluation JSON",
    )
    parser.add_argument("--out", type=Path, required=True, help="Markdown file; the numbers go beside as .csv")
    add_evaluation_keys(parser)


def add_common(parser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (best.pt, last.pt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--split", choices=("train", "test"), default="train", help="samples to analyse (default train)"
    )
    parser.add_argument("--data-root", help="data folder, when it moved since training (default: the run's data.root)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--eps", default="8/255", help="l-inf budget of PGD (default 8/255)")
    parser.add_argument("--step-size", default="2/255", help="PGD step (default 2/255)")
    parser.add_argument("--pgd-steps", type=int, default=50, help="PGD steps (default 50)")
    parser.add_argument("--batch-size", type=int, default=256)


def add_margin_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--n", type=int, help="analyse only the first N samples of the split (in data set order)")
    parser.add_argument("--mu-max", type=float, default=50.0, help="search limit (default 50)")
    parser.add_argument("--scan-step", type=float, default=0.1, help="scan step at small mu (default 0.1)")
    parser.add_argument("--scan-growth", type=float, default=0.05, help="relative scan step at large mu (default 0.05)")
    parser.add_argument("--tol", type=float, default=1e-3, help="bisection tolerance on mu (default 1e-3)")
    parser.add_argument(
        "--figure-mus", type=float, nargs="+", default=[0, 1, 2, 4, 8, 16, 32, 50], help="mu values shown in Fig. 2"
    )


def add_landscape_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--indices", type=int, nargs="+", help="dataset indices of the samples to show")
    parser.add_argument(
        "--log",
        type=Path,
        help="pick the samples from this AV log instead: the --pick most and --pick least vulnerable at --epoch",
    )
    parser.add_argument(
        "--margins",
        type=Path,
        help="pick the samples by margin instead (margins.npz of `iseat analyse "
        "margin`, same split): --pick disordered, the most robust and "
        "the most vulnerable, as the paper's Fig. 3",
    )
    parser.add_argument("--pick", type=int, default=2)
    parser.add_argument("--epoch", type=int, default=-1, help="epoch of --log (-1 = last complete)")
    parser.add_argument("--alpha-range", type=float, nargs=2, default=[-2.0, 2.0], metavar=("MIN", "MAX"))
    parser.add_argument("--beta-range", type=float, nargs=2, default=[-2.0, 2.0], metavar=("MIN", "MAX"))
    parser.add_argument("--steps", type=int, default=21, help="grid points per axis (default 21)")
    parser.add_argument("--clip", action="store_true", help="clip the inputs to [0, 1] (Eq. 8 does not)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random direction u")


def add_evaluation_keys(parser) -> None:
    parser.add_argument(
        "--accuracy-key", default="clean_accuracy", help="dotted key of the clean accuracy in the evaluation JSON"
    )
    parser.add_argument(
        "--robustness-key", default="robust_accuracy", help="dotted key of the robust accuracy in the evaluation JSON"
    )


def run(args) -> int:
    return {
        "margin": run_margin,
        "landscape": run_landscape,
        "av-figure": run_av_figure,
        "vulnerability": run_vulnerability,
        "eta-sweep": run_eta_sweep,
        "table1": run_table1,
        "index": run_index,
    }[args.study](args)


def study_attack(args):
    from iseat.analysis.inputs import study_attack

    return study_attack(args.eps, args.step_size, args.pgd_steps, args.batch_size)


def run_margin(args) -> int:
    from iseat.analysis.inputs import margin_search
    from iseat.analysis.sample_studies import margin_study_files

    attack = study_attack(args)
    search = margin_search(args.mu_max, args.scan_step, args.scan_growth, args.tol)
    summary = margin_study_files(
        args.checkpoint,
        args.out,
        attack,
        search,
        split=args.split,
        n=args.n,
        data_root=args.data_root,
        device=args.device,
        batch_size=args.batch_size,
        figure_mus=args.figure_mus,
    )
    print(
        f"margin of {summary['n_samples']} samples: {100 * summary['share_disordered']:.2f} % at mu = "
        f"{search.mu_max:g}, median {summary['mu_quantiles']['q50']:.3f}; search "
        f"{summary['throughput']['search_samples_per_s']:.1f} samples/s; wrote {args.out}"
    )
    return 0


def run_landscape(args) -> int:
    from iseat.analysis.inputs import landscape_samples
    from iseat.analysis.sample_studies import landscape_study_files

    attack = study_attack(args)
    samples = landscape_samples(args.indices, args.log, args.margins, args.epoch, args.pick)
    summary = landscape_study_files(
        args.checkpoint,
        args.out,
        attack,
        samples,
        split=args.split,
        data_root=args.data_root,
        device=args.device,
        alpha_range=args.alpha_range,
        beta_range=args.beta_range,
        steps=args.steps,
        clip=args.clip,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    print(f"loss landscape of samples {summary['indices']} on a {args.steps}x{args.steps} grid; wrote {args.out}")
    return 0


def run_av_figure(args) -> int:
    from iseat.analysis.studies import av_figure

    print(f"Fig. 1a over {av_figure(args.log, args.out, args.title)} epochs: {args.out}")
    return 0


def run_vulnerability(args) -> int:
    from iseat.analysis.vulnerability import vulnerability_study

    summary = vulnerability_study(
        args.checkpoint,
        args.split,
        args.out,
        data_root=args.data_root,
        device=args.device,
        batch_size=args.batch_size,
        n_examples=args.n_examples,
        seed=args.seed,
        progress=args.progress,
    )
    print(
        f"AV of {summary['n_samples']} {args.split} samples: SD {summary['av_statistics']['av_sd']:.4f}; "
        f"wrote {args.out}"
    )
    return 0


def run_eta_sweep(args) -> int:
    from iseat.analysis.studies import eta_sweep

    etas = eta_sweep(args.runs, args.evals, args.out, args.test_av, args.accuracy_key, args.robustness_key)
    print(f"Fig. 4 over eta = {etas}: {args.out}")
    return 0


def run_table1(args) -> int:
    from iseat.analysis.studies import table1

    rows = table1(args.entry, args.out, args.accuracy_key, args.robustness_key)
    print(f"Tab. 1 with {len(rows)} methods: {args.out}")
    return 0


def run_index(args) -> int:
    index_page(args.files, args.out, args.title)
    return 0
