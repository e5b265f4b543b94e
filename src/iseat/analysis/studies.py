"""The Section 3 studies as files: margin (Eq. 7, Fig. 1b, Fig. 2), loss landscape (Eq. 8, Fig. 3), Fig. 1a
from an AV log, Tab. 1 and an index page. Each figure is saved with the arrays it plots; each study's JSON
summary is written last."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from iseat.analysis.inputs import check_out_folder, checkpoint_facts, load_inputs, positions_of, stack_samples
from iseat.common.errors import ParameterError, UserError, literal
from iseat.common.io import write_json_atomic, write_text_atomic
from iseat.results.index import relpath

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


def margin_study_files(
    checkpoint: Path,
    out: Path,
    attack,
    search,
    *,
    split: str = "train",
    n: int | None = None,
    data_root: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
    figure_mus=(0, 1, 2, 4, 8, 16, 32, 50),
) -> dict:
    """Eq. 7 margin of the first `n` samples of `split` (all: None): margins.npz, fig1b, fig2 and margin.json
    (written last, returned) in the folder `out`."""
    from iseat.analysis import figures
    from iseat.analysis.margin import (
        adversarial_direction,
        evaluation_mode,
        figure2_positions,
        margin_study,
        margin_summary,
        perturbation_grid,
    )
    from iseat.common.device import resolve_device
    from iseat.common.provenance import provenance
    from iseat.training.avlog import av_statistics

    check_out_folder(out)
    if n is not None and n < 1:
        raise ParameterError(f"{{0}} must be at least 1, got {n}", "n")
    device = resolve_device(device)
    inputs = load_inputs(checkpoint, split, data_root, device)
    model, bundle, dataset = inputs.model, inputs.bundle, inputs.dataset
    result = margin_study(model, bundle.eval_loader(dataset, batch_size), device, attack, search, max_samples=n)

    figures.write_npz(out / "margins.npz", result.arrays())
    budget = float(result.delta_norm.mean())
    figures.figure1b_margin(result.mu, result.mu_max, budget, out / "fig1b.png", title=f"{bundle.name}, {split}")
    x, y, index = stack_samples(dataset, figure2_positions(result))
    with evaluation_mode(model):
        direction, _, _ = adversarial_direction(model, x.to(device), y.to(device), attack)
    grid = perturbation_grid(model, x.to(device), direction, list(figure_mus), y.to(device))
    figures.figure2_perturbation_grid(
        grid, out / "fig2.png", labels=y.numpy(), indices=index, class_names=figures.CLASS_NAMES.get(bundle.name)
    )
    summary = margin_summary(result, attack.eps) | {
        "av_statistics": av_statistics(result.av),
        "split": split,
        "dataset": bundle.name,
        "attack": {
            "eps": attack.eps,
            "step_size": attack.step_size,
            "steps": attack.steps,
            "random_start": False,
            "label": "true",
        },
        "search": {
            "mu_max": search.mu_max,
            "step": search.step,
            "growth": search.growth,
            "tol": search.tol,
            "grid_points": len(search.grid()),
        },
        "seconds": result.seconds,
        "throughput": result.throughput(),
        "figure2_indices": index.tolist(),
        "checkpoint": checkpoint_facts(checkpoint, inputs.checkpoint),
        "provenance": provenance(device),
    }
    write_json_atomic(out / "margin.json", summary)
    return summary


def landscape_study_files(
    checkpoint: Path,
    out: Path,
    attack,
    samples: tuple[list[int], list[str]],
    *,
    split: str = "train",
    data_root: str | None = None,
    device: str = "auto",
    alpha_range=(-2.0, 2.0),
    beta_range=(-2.0, 2.0),
    steps: int = 21,
    clip: bool = False,
    seed: int = 0,
    batch_size: int = 256,
) -> dict:
    """Eq. 8 loss landscape of the chosen samples ((dataset indices, panel titles)): fig3 (+ fig3.npz) and
    landscape.json (written last, returned) in the folder `out`."""
    from iseat.analysis import figures
    from iseat.analysis.landscape import loss_landscape
    from iseat.common.device import resolve_device
    from iseat.common.provenance import provenance

    check_out_folder(out)
    if steps < 2:
        raise ParameterError(f"{{0}} must be at least 2, got {steps}", "steps")
    wanted, titles = samples
    device = resolve_device(device)
    inputs = load_inputs(checkpoint, split, data_root, device)
    x, y, index = stack_samples(inputs.dataset, positions_of(inputs.bundle, inputs.dataset, wanted))
    alphas, betas = np.linspace(*alpha_range, steps), np.linspace(*beta_range, steps)
    land = loss_landscape(inputs.model, x.to(device), y.to(device), alphas, betas, seed, attack, clip, batch_size)
    figures.figure3_landscape(land.arrays(), out / "fig3.png", indices=index, titles=titles)
    summary = {
        "indices": index.tolist(),
        "titles": titles,
        "split": split,
        "clip": clip,
        "seed": seed,
        "alpha_range": list(alpha_range),
        "beta_range": list(beta_range),
        "steps": steps,
        "attack": {"eps": attack.eps, "step_size": attack.step_size, "steps": attack.steps},
        "clean_loss": land.loss[:, np.argmin(np.abs(alphas)), np.argmin(np.abs(betas))].tolist(),
        "checkpoint": checkpoint_facts(checkpoint, inputs.checkpoint),
        "provenance": provenance(device),
    }
    write_json_atomic(out / "landscape.json", summary)
    return summary


def check_image(out: Path) -> None:
    """`out` ends in an image format the figures are written in (.png, .svg, .pdf); UserError if not."""
    from iseat.analysis.figures import image_format

    try:
        image_format(out)
    except ValueError as err:
        raise UserError(str(err)) from None


def av_figure(log_path: Path, out: Path, title: str = "") -> int:
    """Fig. 1a from an AV log; the number of epochs shown."""
    from iseat.analysis.figures import figure1a_av_statistics
    from iseat.training.avlog import AVLog

    check_image(out)
    with AVLog(log_path) as log:
        summary = log.summary()
    if len(summary["epoch"]) == 0:
        raise UserError(f"{log_path} holds no complete epoch yet")
    figure1a_av_statistics(summary, out, title)
    return len(summary["epoch"])


def run_eta(run_dir: Path) -> float:
    """The Eq. 9 strength of a run's last lr stage, from its resolved config."""
    import yaml

    from iseat.methods.presets import MethodSchedule

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml)")
    return float(MethodSchedule.from_config(yaml.safe_load(path.read_text())["method"]).eta[-1])


def eta_sweep(
    runs: list[Path],
    evaluations: list[Path],
    out: Path,
    test_av: list[Path] | None = None,
    accuracy_key: str = "clean_accuracy",
    robustness_key: str = "robust_accuracy",
) -> list[float]:
    """Fig. 4 from the Eq. 9 sweep's runs: each run's eta, accuracy and robustness (its evaluation JSON), the
    AV SD of its training set (its AV log) and, with `test_av`, of the test set (`iseat analyse vulnerability`
    summaries), one per run. Returns the etas in order."""
    from iseat.analysis.figures import figure4_eta_sweep
    from iseat.analysis.tables import av_statistics_of, read_evaluation

    check_image(out)
    if len(runs) != len(evaluations) or (test_av is not None and len(test_av) != len(runs)):
        counts = f"{{1}} {len(evaluations)} files" + ("" if test_av is None else f" and {{2}} {len(test_av)}")
        raise ParameterError(
            f"{{0}} gives {len(runs)} runs but {counts}; give one per run", "runs", "evaluations", "test_av"
        )
    rows = []
    for run_dir, evaluation, test in zip(runs, evaluations, test_av or [None] * len(runs)):
        try:
            scores = read_evaluation(evaluation, accuracy_key, robustness_key)
            rows.append(
                (
                    run_eta(run_dir),
                    scores["accuracy"],
                    scores["robustness"],
                    av_statistics_of(Path(run_dir) / "av_log.h5")["av_sd"],
                    av_statistics_of(test)["av_sd"] if test else np.nan,
                )
            )
        except (FileNotFoundError, ValueError) as err:
            raise UserError(str(err)) from None
    eta, acc, rob, sd, test_sd = map(np.array, zip(*rows))
    figure4_eta_sweep(eta, acc, rob, sd, out, test_av_sd=test_sd if test_av else None)
    return sorted(eta.tolist())


def table1(entries, out: Path, accuracy_key: str = "clean_accuracy", robustness_key: str = "robust_accuracy") -> list:
    """Tab. 1 from (method name, AV source, evaluation JSON) entries as Markdown at `out` (numbers beside as .csv);
    the AT row's margins (an AV source margin.json) add the share of disordered samples."""
    from iseat.analysis.tables import read_evaluation, table1_rows, write_table1

    if out.suffix != ".md":
        raise ParameterError(f"{{0}} {literal(out)}: give a Markdown (.md) file", "out")
    try:
        rows = table1_rows(
            [(name, Path(av), read_evaluation(ev, accuracy_key, robustness_key)) for name, av, ev in entries]
        )
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    at_margins = next(
        (Path(av) for name, av, _ in entries if name.lower() == "at" and Path(av).suffix == ".json"), None
    )
    write_table1(rows, out, json.loads(at_margins.read_text()) if at_margins else None)
    return rows


def index_page(files: list[Path], out: Path, title: str = "Section 3 analyses") -> None:
    """A Markdown page at `out` linking the study outputs, each under its caption."""
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise UserError(f"not found: {', '.join(missing[:3])}")
    lines = [f"# {title}", ""]
    for f in files:
        caption = CAPTIONS.get(f.stem) or CAPTIONS.get(f.stem.split("_")[0], f.stem)  # fig1a_<run> -> fig1a
        rel = relpath(f, out.parent)
        lines.append(f"- [{caption}]({rel}) (`{rel}`)")
    write_text_atomic(out, "\n".join(lines) + "\n")
