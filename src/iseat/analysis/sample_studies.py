"""The Section 3 studies of a checkpoint's samples as files: margin (Eq. 7, Fig. 1b, Fig. 2) and loss landscape
(Eq. 8, Fig. 3). Each figure is saved with the arrays it plots; each study's JSON summary is written last."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iseat.analysis import study_figures as figures
from iseat.analysis.inputs import check_out_folder, checkpoint_facts, load_inputs, positions_of, stack_samples
from iseat.analysis.landscape import loss_landscape
from iseat.analysis.margin import (
    adversarial_direction,
    evaluation_mode,
    figure2_positions,
    margin_study,
    margin_summary,
    perturbation_grid,
)
from iseat.common.device import resolve_device
from iseat.common.errors import ParameterError
from iseat.common.io import write_json_atomic
from iseat.common.provenance import provenance
from iseat.training.avlog import av_statistics


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
