"""Figures 1-4 of the paper. Every function saves the arrays it plots beside the image (same name,
.csv or .npz) and returns them, so a test or a reader can check the figure's content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from iseat.data.registry import DATASETS
from iseat.results.writers import image_format, read_csv, save_figure, write_csv, write_npz  # noqa: F401 (read_csv: the reader of write_csv)

CLASS_NAMES = {name: d.class_names for name, d in DATASETS.items() if d.class_names}


def data_path(out, kind: str) -> Path:
    """Where the plotted arrays of the figure `out` are saved (`kind` is csv or npz)."""
    return Path(out).with_suffix(f".{kind}")


# ---------------------------------------------------------------------------------------------


def figure1a_av_statistics(summary: dict, out, title: str = "") -> dict:
    """Fig. 1a: AV statistics of the training set per epoch (`AVLog.summary()`)."""
    image_format(out)
    data = {
        name: np.asarray(summary[name])
        for name in ("epoch", "av_mean", "av_sd", "av_top10_mean", "av_bottom10_mean", "share_av_ge_1", "share_av_le_0")
    }
    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2)
    for name, label in (
        ("av_sd", "AV SD"),
        ("av_top10_mean", "top-10 % mean"),
        ("av_bottom10_mean", "bottom-10 % mean"),
    ):
        left.plot(data["epoch"], data[name], label=label)
    left.set(xlabel="epoch", ylabel="adversarial vulnerability")
    left.legend(fontsize=8)
    for name, label in (("share_av_ge_1", "share AV ≥ 1"), ("share_av_le_0", "share AV ≤ 0")):
        right.plot(data["epoch"], data[name], label=label)
    right.set(xlabel="epoch", ylabel="share of training samples", ylim=(0, 1))
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    write_csv(data_path(out, "csv"), data)
    save_figure(fig, out)
    return data


def figure1b_margin(mu: np.ndarray, mu_max: float, budget: float, out, bins: int = 100, title: str = "") -> dict:
    """Fig. 1b: histogram and CDF of the Eq. 7 margin; the eps budget (l2 length of the PGD
    perturbation) is marked, and the share at mu_max ("disordered robustness") reported."""
    image_format(out)
    mu = np.sort(np.asarray(mu, dtype=np.float64))
    edges = np.linspace(0.0, mu_max, bins + 1)
    counts, _ = np.histogram(mu, bins=edges)
    cdf = np.arange(1, len(mu) + 1) / len(mu)
    share_disordered = float((mu >= mu_max).mean())
    data = {
        "mu_sorted": mu,
        "cdf": cdf,
        "bin_edges": edges,
        "counts": counts,
        "budget": np.float64(budget),
        "mu_max": np.float64(mu_max),
        "share_disordered": np.float64(share_disordered),
        "share_within_budget": np.float64((mu <= budget).mean()),
    }
    fig = Figure(figsize=(9, 3.4))
    hist, cum = fig.subplots(1, 2)
    hist.stairs(counts, edges, fill=True)
    hist.set(xlabel="margin μ", ylabel="samples", yscale="log")
    cum.step(mu, cdf, where="post")
    cum.set(xlabel="margin μ", ylabel="CDF", ylim=(0, 1), xlim=(0, mu_max))
    for ax in (hist, cum):
        ax.axvline(budget, color="C3", linestyle="--", label=f"ε budget (‖δ‖₂ = {budget:.2f})")
    cum.legend(
        fontsize=8, loc="lower right", title=f"at μ = {mu_max:g}: {100 * share_disordered:.1f} %", title_fontsize=8
    )
    if title:
        fig.suptitle(title)
    write_npz(data_path(out, "npz"), data)
    save_figure(fig, out)
    return data


def figure2_perturbation_grid(grid: dict, out, labels=None, class_names=None, indices=None) -> dict:
    """Fig. 2: each row one sample, each column clip(x + mu d) at one mu, titled with the predicted
    class and the confidence of the ground-truth class, as the paper (the top class's confidence when the
    grid has no `true_confidence`). `grid` is `margin.perturbation_grid`'s output."""
    image_format(out)
    images, pred, conf, mus = grid["images"], grid["pred"], grid["confidence"], grid["mu"]
    s, m = pred.shape
    names = list(class_names) if class_names else [str(c) for c in range(int(pred.max()) + 1)]
    name = lambda c: names[c] if c < len(names) else str(c)
    fig = Figure(figsize=(1.3 * m, 1.5 * s + 0.3))
    axes = np.atleast_2d(fig.subplots(s, m, squeeze=False))
    for i in range(s):
        for j in range(m):
            ax = axes[i, j]
            img = np.transpose(images[i, j], (1, 2, 0))
            ax.imshow(
                img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1
            )
            ax.set_xticks([]), ax.set_yticks([])
            caption = (
                f"true {100 * grid['true_confidence'][i, j]:.0f}%"
                if "true_confidence" in grid
                else f"{100 * conf[i, j]:.0f}%"
            )
            ax.set_title(f"μ={mus[j]:g}\n{name(int(pred[i, j]))} {caption}", fontsize=7)
        if labels is not None:
            ax0 = axes[i, 0]
            ax0.set_ylabel(f"#{indices[i] if indices is not None else i}\n{name(int(labels[i]))}", fontsize=7)
    data = dict(grid)
    if labels is not None:
        data["label"] = np.asarray(labels)
    if indices is not None:
        data["index"] = np.asarray(indices)
    data["class_names"] = np.array(names)
    write_npz(data_path(out, "npz"), data)
    save_figure(fig, out)
    return data


def figure3_landscape(landscape: dict, out, indices=None, titles=None) -> dict:
    """Fig. 3: Eq. 8 loss surfaces, one 3-D panel per sample, alpha along the adversarial and beta
    along the random direction. `landscape` is `Landscape.arrays()`."""
    image_format(out)
    alphas, betas, loss = landscape["alphas"], landscape["betas"], landscape["loss"]
    s = loss.shape[0]
    fig = Figure(figsize=(3.6 * s, 3.4))
    grid_a, grid_b = np.meshgrid(alphas, betas, indexing="ij")
    for i in range(s):
        ax = fig.add_subplot(1, s, i + 1, projection="3d")
        ax.plot_surface(grid_a, grid_b, loss[i], cmap="viridis", linewidth=0, antialiased=True)
        ax.set_xlabel("α (adversarial)", fontsize=8)
        ax.set_ylabel("β (random)", fontsize=8)
        ax.set_zlabel("loss", fontsize=8)
        label = titles[i] if titles is not None else (f"sample {indices[i]}" if indices is not None else f"sample {i}")
        ax.set_title(label, fontsize=9)
    data = dict(landscape)
    if indices is not None:
        data["index"] = np.asarray(indices)
    if titles is not None:
        data["titles"] = np.array(titles)
    write_npz(data_path(out, "npz"), data)
    save_figure(fig, out)
    return data


def figure4_eta_sweep(eta, accuracy, robustness, av_sd, out, title: str = "", test_av_sd=None) -> dict:
    """Fig. 4: clean accuracy, robustness (both in %) and the SD of AV over the training set (`av_sd`) and,
    as the paper, over the test set (`test_av_sd`, when given) against the Eq. 9 strength eta."""
    image_format(out)
    order = np.argsort(np.asarray(eta, dtype=np.float64), kind="stable")
    columns = {"eta": eta, "accuracy": accuracy, "robustness": robustness, "av_sd": av_sd, "test_av_sd": test_av_sd}
    data = {name: np.asarray(values, dtype=np.float64)[order] for name, values in columns.items() if values is not None}
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    ax.plot(data["eta"], 100 * data["accuracy"], "o-", label="accuracy")
    ax.plot(data["eta"], 100 * data["robustness"], "s-", label="robustness")
    ax.set(xlabel="η (Eq. 9)", ylabel="%")
    twin = ax.twinx()
    twin.plot(data["eta"], data["av_sd"], "^--", color="C3", label="AV SD (train)")
    if "test_av_sd" in data:
        twin.plot(data["eta"], data["test_av_sd"], "v:", color="C4", label="AV SD (test)")
    twin.set_ylabel("AV SD")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    write_csv(data_path(out, "csv"), data)
    save_figure(fig, out)
    return data
