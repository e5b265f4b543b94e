"""`iseat analyse STUDY`: the paper's Section 3 studies as files: margin (Eq. 7, Fig. 1b, Fig. 2),
loss landscape (Eq. 8, Fig. 3), AV statistics per epoch (Fig. 1a), the AV (Eq. 3) of every sample of a
split, the Eq. 9 eta sweep (Fig. 4), Tab. 1, and an index page linking them. Every figure is saved with
the arrays it plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..config import parse_fraction
from ..io import write_json_atomic, write_text_atomic
from . import UserError

CAPTIONS = {
    "fig1a": "Fig. 1a: AV statistics of the training set per epoch",
    "fig1b": "Fig. 1b: margin (Eq. 7) histogram and CDF, ε budget marked",
    "fig2": "Fig. 2: perturbed images along the adversarial direction, with class and confidence",
    "fig3": "Fig. 3: loss landscape (Eq. 8) along the adversarial and a random direction",
    "fig4": "Fig. 4: Eq. 9 strength η against accuracy, robustness and AV SD (training and test set)",
    "table1": "Tab. 1: AV statistics and robustness per method",
    "margin": "margin study summary (share disordered, quantiles, AV statistics, throughput)",
    "landscape": "loss landscape settings and the samples shown",
}


def add_arguments(parser) -> None:
    studies = parser.add_subparsers(dest="study", required=True, metavar="STUDY")
    add_margin_arguments(studies.add_parser("margin", help="Eq. 7 margin of every sample; Fig. 1b and Fig. 2"))
    add_landscape_arguments(studies.add_parser("landscape", help="Eq. 8 loss landscape of chosen samples; Fig. 3"))
    fig1a = studies.add_parser("av-figure", help="Fig. 1a from an AV log")
    fig1a.add_argument("--log", type=Path, required=True, help="the run's av_log.h5")
    fig1a.add_argument("--out", type=Path, required=True, help="image (.png, .svg or .pdf); the data goes beside as .csv")
    fig1a.add_argument("--title", default="")
    av = studies.add_parser("vulnerability", help="Eq. 3 AV of every sample of a split under the run's training PGD")
    av.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (best.pt, last.pt)")
    av.add_argument("--out", type=Path, required=True, help="summary (.json); the per-sample CSV goes beside it")
    av.add_argument("--split", default="test", help="train or test (default test)")
    av.add_argument("--n-examples", type=int, help="only the first N samples of the split (default all)")
    av.add_argument("--data-root", help="data folder, when it moved since training (default: the run's data.root)")
    av.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    av.add_argument("--batch-size", type=int, default=256)
    av.add_argument("--seed", type=int, default=0, help="seed of PGD's random start, if the run uses one")
    av.add_argument("--no-progress", dest="progress", action="store_false")
    sweep = studies.add_parser("eta-sweep", help="Fig. 4 from fine-tuning runs with different eta")
    sweep.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (config.yaml, av_log.h5)")
    sweep.add_argument("--evals", type=Path, nargs="+", required=True, help="one evaluation JSON per run, same order")
    sweep.add_argument("--test-av", type=Path, nargs="+",
                       help="one `analyse vulnerability` summary (test set) per run, same order")
    sweep.add_argument("--out", type=Path, required=True, help="image; the data goes beside as .csv")
    add_evaluation_keys(sweep)
    table = studies.add_parser("table1", help="Tab. 1: AV statistics and robustness per method")
    table.add_argument("--entry", nargs=3, action="append", required=True, metavar=("NAME", "AV", "EVAL"),
                       help="method name, AV source (margin.json of `analyse margin`, or an av_log.h5), evaluation JSON")
    table.add_argument("--out", type=Path, required=True, help="Markdown file; the numbers go beside as .csv")
    add_evaluation_keys(table)
    index = studies.add_parser("index", help="a Markdown page linking the analysis outputs")
    index.add_argument("--out", type=Path, required=True)
    index.add_argument("--title", default="Section 3 analyses")
    index.add_argument("files", type=Path, nargs="+")


def add_common(parser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (best.pt, last.pt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="samples to analyse (default train)")
    parser.add_argument("--data-root", help="data folder, when it moved since training (default: the run's data.root)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
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
    parser.add_argument("--figure-mus", type=float, nargs="+", default=[0, 1, 2, 4, 8, 16, 32, 50],
                        help="mu values shown in Fig. 2")


def add_landscape_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--indices", type=int, nargs="+", help="dataset indices of the samples to show")
    parser.add_argument("--log", type=Path, help="pick the samples from this AV log instead: the --pick most "
                                                 "and --pick least vulnerable at --epoch")
    parser.add_argument("--margins", type=Path, help="pick the samples by margin instead (margins.npz of `iseat analyse "
                                                     "margin`, same split): --pick disordered, the most robust and "
                                                     "the most vulnerable, as the paper's Fig. 3")
    parser.add_argument("--pick", type=int, default=2)
    parser.add_argument("--epoch", type=int, default=-1, help="epoch of --log (-1 = last complete)")
    parser.add_argument("--alpha-range", type=float, nargs=2, default=[-2.0, 2.0], metavar=("MIN", "MAX"))
    parser.add_argument("--beta-range", type=float, nargs=2, default=[-2.0, 2.0], metavar=("MIN", "MAX"))
    parser.add_argument("--steps", type=int, default=21, help="grid points per axis (default 21)")
    parser.add_argument("--clip", action="store_true", help="clip the inputs to [0, 1] (Eq. 8 does not)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random direction u")


def add_evaluation_keys(parser) -> None:
    parser.add_argument("--accuracy-key", default="clean_accuracy", help="dotted key of the clean accuracy in the evaluation JSON")
    parser.add_argument("--robustness-key", default="robust_accuracy", help="dotted key of the robust accuracy in the evaluation JSON")


def run(args) -> int:
    return {"margin": run_margin, "landscape": run_landscape, "av-figure": run_av_figure,
            "vulnerability": run_vulnerability, "eta-sweep": run_eta_sweep, "table1": run_table1,
            "index": run_index}[args.study](args)


# ---------------------------------------------------------------------------------------------
# shared set-up: arguments, checkpoint, data

def check_image(out: Path) -> None:
    from ..analysis.figures import image_format

    try:
        image_format(out)
    except ValueError as err:
        raise UserError(str(err)) from None


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")


def fraction(value: str, name: str) -> float:
    try:
        out = parse_fraction(value if "/" in value else float(value))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"{name}: {value!r} is not a number or a fraction such as 8/255") from None
    if not 0 <= out <= 0.25:
        raise UserError(f"{name}: {value} is outside [0, 0.25]; give it for inputs in [0, 1], e.g. 8/255")
    return out


def analysis_attack(args):
    from ..attack import PGD

    if args.pgd_steps < 1 or args.batch_size < 1:
        raise UserError("--pgd-steps and --batch-size must be at least 1")
    return PGD(eps=fraction(args.eps, "--eps"), step_size=fraction(args.step_size, "--step-size"),
               steps=args.pgd_steps, random_start=False)


def resolve_device(name: str):
    from ..device import DeviceUnavailable, resolve_device as resolve

    try:
        return resolve(name)
    except DeviceUnavailable as err:
        raise UserError(str(err)) from None


def model_and_data(args, device):
    """(model in eval mode, checkpoint, data bundle, dataset of --split)."""
    from ..checkpoint import CheckpointError, load_model, read_checkpoint

    try:
        config = read_checkpoint(args.checkpoint)["config"]
        bundle = load_bundle(config, args.data_root)
        model, ckpt = load_model(args.checkpoint, device, expect_num_classes=bundle.num_classes)
    except CheckpointError as err:
        raise UserError(str(err)) from None
    return model, ckpt, bundle, split_dataset(bundle, args.split)


def load_bundle(config: dict, data_root: str | None):
    try:
        from ..data import load_data
    except ImportError as err:
        raise UserError(f"the data module is not available ({err})") from None
    data_cfg = dict(config["data"])
    if data_root:
        data_cfg["root"] = data_root
    try:
        return load_data(data_cfg, config.get("seed", 0))
    except (ValueError, OSError) as err:  # DataError is a ValueError
        raise UserError(f"data: {str(err).splitlines()[0]}") from None


def split_dataset(bundle, split: str):
    """The un-augmented samples of `split`: the test set, or the labelled training set (`bundle.train`,
    validation part excluded)."""
    dataset = bundle.test if split == "test" else getattr(bundle, "train", None)
    if dataset is None:
        raise UserError("--split train: the data bundle has no un-augmented training set (train); use --split test")
    return dataset


def stack_samples(dataset, positions):
    """(x, y, index) tensors of the samples at these positions of `dataset`."""
    import torch

    items = [dataset[int(p)] for p in positions]
    return (torch.stack([torch.as_tensor(x) for x, _, _ in items]), torch.as_tensor([int(y) for _, y, _ in items]),
            np.array([int(i) for _, _, i in items], dtype=np.int64))


def checkpoint_facts(path: Path, ckpt: dict) -> dict:
    from ..checkpoint import sha256_of

    return {"path": str(path), "sha256": sha256_of(path), "epoch": ckpt.get("epoch"), "architecture": ckpt["architecture"]}


# ---------------------------------------------------------------------------------------------
# margin (Eq. 7): margins.npz, fig1b, fig2, margin.json (written last)

def margin_search(args):
    from ..analysis.margin import MarginSearch

    try:
        return MarginSearch(mu_max=args.mu_max, step=args.scan_step, growth=args.scan_growth, tol=args.tol)
    except ValueError as err:
        raise UserError(str(err)) from None


def run_margin(args) -> int:
    from ..analysis import figures
    from ..analysis.margin import adversarial_direction, evaluation_mode, figure2_positions, margin_study, \
        margin_summary, perturbation_grid
    from ..avlog import av_statistics
    from ..provenance import provenance

    check_out_dir(args.out)
    attack, search = analysis_attack(args), margin_search(args)
    if args.n is not None and args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    device = resolve_device(args.device)
    model, ckpt, bundle, dataset = model_and_data(args, device)
    loader = bundle.eval_loader(dataset, args.batch_size)
    result = margin_study(model, loader, device, attack, search, max_samples=args.n)

    out = args.out
    figures.write_npz(out / "margins.npz", result.arrays())
    budget = float(result.delta_norm.mean())
    figures.figure1b_margin(result.mu, result.mu_max, budget, out / "fig1b.png", title=f"{bundle.name}, {args.split}")
    positions = figure2_positions(result)
    x, y, index = stack_samples(dataset, positions)
    with evaluation_mode(model):
        direction, _, _ = adversarial_direction(model, x.to(device), y.to(device), attack)
    grid = perturbation_grid(model, x.to(device), direction, args.figure_mus, y.to(device))
    figures.figure2_perturbation_grid(grid, out / "fig2.png", labels=y.numpy(), indices=index,
                                      class_names=figures.CLASS_NAMES.get(bundle.name))
    summary = margin_summary(result, attack.eps) | {
        "av_statistics": av_statistics(result.av), "split": args.split, "dataset": bundle.name,
        "attack": {"eps": attack.eps, "step_size": attack.step_size, "steps": attack.steps, "random_start": False,
                   "label": "true"},
        "search": {"mu_max": search.mu_max, "step": search.step, "growth": search.growth, "tol": search.tol,
                   "grid_points": len(search.grid())},
        "seconds": result.seconds, "throughput": result.throughput(), "figure2_indices": index.tolist(),
        "checkpoint": checkpoint_facts(args.checkpoint, ckpt), "provenance": provenance(device)}
    write_json_atomic(out / "margin.json", summary)
    print(f"margin of {summary['n_samples']} samples: {100 * summary['share_disordered']:.2f} % at mu = "
          f"{search.mu_max:g}, median {summary['mu_quantiles']['q50']:.3f}; search "
          f"{summary['throughput']['search_samples_per_s']:.1f} samples/s; wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# loss landscape (Eq. 8): fig3 (+ fig3.npz), landscape.json (written last)

def run_landscape(args) -> int:
    from ..analysis import figures
    from ..analysis.landscape import loss_landscape
    from ..provenance import provenance

    check_out_dir(args.out)
    attack = analysis_attack(args)
    if sum(a is not None for a in (args.indices, args.log, args.margins)) != 1:
        raise UserError("give one of --indices, --log (the most and least vulnerable samples) or --margins "
                        "(samples chosen by margin)")
    if args.steps < 2 or args.pick < 1:
        raise UserError("--steps must be at least 2 and --pick at least 1")
    wanted, titles = wanted_samples(args)
    device = resolve_device(args.device)
    model, ckpt, bundle, dataset = model_and_data(args, device)
    positions = positions_of(bundle, dataset, wanted)
    x, y, index = stack_samples(dataset, positions)
    alphas = np.linspace(*args.alpha_range, args.steps)
    betas = np.linspace(*args.beta_range, args.steps)
    land = loss_landscape(model, x.to(device), y.to(device), alphas, betas, args.seed, attack, args.clip,
                          args.batch_size)
    figures.figure3_landscape(land.arrays(), args.out / "fig3.png", indices=index, titles=titles)
    write_json_atomic(args.out / "landscape.json", {
        "indices": index.tolist(), "titles": titles, "split": args.split, "clip": args.clip, "seed": args.seed,
        "alpha_range": args.alpha_range, "beta_range": args.beta_range, "steps": args.steps,
        "attack": {"eps": attack.eps, "step_size": attack.step_size, "steps": attack.steps},
        "clean_loss": land.loss[:, np.argmin(np.abs(alphas)), np.argmin(np.abs(betas))].tolist(),
        "checkpoint": checkpoint_facts(args.checkpoint, ckpt), "provenance": provenance(device)})
    print(f"loss landscape of samples {index.tolist()} on a {args.steps}x{args.steps} grid; wrote {args.out}")
    return 0


def wanted_samples(args) -> tuple[list[int], list[str]]:
    """Dataset indices to show and their panel titles: --indices, or the most / least vulnerable of --log."""
    if args.indices is not None:
        return list(args.indices), [f"sample {i}" for i in args.indices]
    if args.margins is not None:
        from ..analysis.margin import figure3_picks

        try:
            with np.load(args.margins) as margins:
                return figure3_picks(dict(margins), args.pick)
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"--margins {args.margins}: {err}") from None
    from ..avlog import AVLog
    from .inspect import resolve_epoch, top_table

    try:
        with AVLog(args.log) as log:
            epoch = resolve_epoch(log.epochs, args.epoch, args.log)
            most = top_table(log, epoch, args.pick, least=False)
            least = top_table(log, epoch, args.pick, least=True)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    titles = [f"#{i} AV {a:.2f} (most)" for i, a in zip(most["index"], most["av"])]
    titles += [f"#{i} AV {a:.2f} (least)" for i, a in zip(least["index"], least["av"])]
    return [int(i) for i in most["index"]] + [int(i) for i in least["index"]], titles


def positions_of(bundle, dataset, wanted: list[int]) -> list[int]:
    """Positions in `dataset` of the wanted dataset indices (`dataset.indices`, or one pass over the data)."""
    indices = getattr(dataset, "indices", None)
    if indices is None:
        indices = np.concatenate([np.asarray(index) for _, _, index in bundle.eval_loader(dataset, 1024)])
    where = {int(i): p for p, i in enumerate(indices)}
    missing = [i for i in wanted if i not in where]
    if missing:
        raise UserError(f"dataset indices {missing[:5]} are not in the {len(indices)} samples of this split")
    return [where[i] for i in wanted]


# ---------------------------------------------------------------------------------------------
# Fig. 1a, Fig. 4, Tab. 1, index

def run_av_figure(args) -> int:
    from ..analysis.figures import figure1a_av_statistics
    from ..avlog import AVLog

    check_image(args.out)
    try:
        with AVLog(args.log) as log:
            summary = log.summary()
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    if len(summary["epoch"]) == 0:
        raise UserError(f"{args.log} holds no complete epoch yet")
    figure1a_av_statistics(summary, args.out, args.title)
    print(f"Fig. 1a over {len(summary['epoch'])} epochs: {args.out}")
    return 0


def run_vulnerability(args) -> int:
    from ..analysis.vulnerability import vulnerability_study

    summary = vulnerability_study(args.checkpoint, args.split, args.out, data_root=args.data_root, device=args.device,
                                  batch_size=args.batch_size, n_examples=args.n_examples, seed=args.seed,
                                  progress=args.progress)
    print(f"AV of {summary['n_samples']} {args.split} samples: SD {summary['av_statistics']['av_sd']:.4f}; "
          f"wrote {args.out}")
    return 0


def run_eta_sweep(args) -> int:
    from ..analysis.figures import figure4_eta_sweep
    from ..analysis.tables import av_statistics_of, read_evaluation

    check_image(args.out)
    if len(args.runs) != len(args.evals) or len(args.runs) != len(args.test_av or args.runs):
        raise UserError(f"--runs gives {len(args.runs)} runs but --evals {len(args.evals)} files and --test-av "
                        f"{len(args.test_av or args.runs)}; give one per run")
    rows = []
    for run_dir, evaluation, test_av in zip(args.runs, args.evals, args.test_av or [None] * len(args.runs)):
        try:
            scores = read_evaluation(evaluation, args.accuracy_key, args.robustness_key)
            rows.append((eta_of(run_dir), scores["accuracy"], scores["robustness"],
                         av_statistics_of(run_dir / "av_log.h5")["av_sd"],
                         av_statistics_of(test_av)["av_sd"] if test_av else np.nan))
        except (FileNotFoundError, ValueError) as err:
            raise UserError(str(err)) from None
    eta, acc, rob, sd, test_sd = map(np.array, zip(*rows))
    figure4_eta_sweep(eta, acc, rob, sd, args.out, test_av_sd=test_sd if args.test_av else None)
    print(f"Fig. 4 over eta = {sorted(eta.tolist())}: {args.out}")
    return 0


def eta_of(run_dir: Path) -> float:
    """The Eq. 9 strength of a run's last lr stage, from its resolved config."""
    import yaml

    from ..method import MethodSchedule

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run folder (no config.yaml)")
    return float(MethodSchedule.from_config(yaml.safe_load(path.read_text())["method"]).eta[-1])


def run_table1(args) -> int:
    from ..analysis.tables import read_evaluation, table1_rows, write_table1

    if args.out.suffix != ".md":
        raise UserError(f"--out {args.out}: give a Markdown (.md) file")
    try:
        entries = [(name, Path(av), read_evaluation(ev, args.accuracy_key, args.robustness_key))
                   for name, av, ev in args.entry]
        rows = table1_rows(entries)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    at_margins = next((Path(av) for name, av, _ in args.entry if name.lower() == "at" and Path(av).suffix == ".json"), None)
    write_table1(rows, args.out, json.loads(at_margins.read_text()) if at_margins else None)
    print(f"Tab. 1 with {len(rows)} methods: {args.out}")
    return 0


def run_index(args) -> int:
    missing = [str(f) for f in args.files if not f.exists()]
    if missing:
        raise UserError(f"not found: {', '.join(missing[:3])}")
    base = args.out.parent
    lines = [f"# {args.title}", ""]
    for f in args.files:
        caption = CAPTIONS.get(f.stem) or CAPTIONS.get(f.stem.split("_")[0], f.stem)  # fig1a_<run> -> fig1a
        rel = Path(os.path.relpath(f, base)).as_posix()
        lines.append(f"- [{caption}]({rel}) (`{rel}`)")
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    return 0

