"""The Section 3 studies read from training outputs: Fig. 1a from an AV log, the Eq. 9 eta sweep (Fig. 4)
and Tab. 1. The studies of a checkpoint's samples are `sample_studies`, the index page `index_page`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from iseat.analysis.study_figures import figure1a_av_statistics, figure4_eta_sweep, image_format
from iseat.analysis.table1 import av_statistics_of, read_evaluation, table1_rows, write_table1
from iseat.common.errors import ParameterError, UserError, literal
from iseat.methods.presets import MethodSchedule
from iseat.training.avlog import AVLog


def check_image(out: Path) -> None:
    """`out` ends in an image format the figures are written in (.png, .svg, .pdf); UserError if not."""
    try:
        image_format(out)
    except ValueError as err:
        raise UserError(str(err)) from None


def av_figure(log_path: Path, out: Path, title: str = "") -> int:
    """Fig. 1a from an AV log; the number of epochs shown."""
    check_image(out)
    with AVLog(log_path) as log:
        summary = log.summary()
    if len(summary["epoch"]) == 0:
        raise UserError(f"{log_path} holds no complete epoch yet")
    figure1a_av_statistics(summary, out, title)
    return len(summary["epoch"])


def run_eta(run_dir: Path) -> float:
    """The Eq. 9 strength of a run's last lr stage, from its resolved config."""

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
