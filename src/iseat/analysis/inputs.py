"""What a Section 3 study reads: the checkpoint's model and its data (the un-augmented split), samples
picked by dataset index, by AV or by margin, and the attack and margin search it uses.

Every mistake is a `ParameterError` naming the study's parameter (`split`, `eps`, `indices`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from iseat.analysis.av_statistics import most_vulnerable, resolve_epoch
from iseat.analysis.margin import MarginSearch, figure3_picks
from iseat.common.errors import ParameterError, UserError, first_line, literal
from iseat.common.fraction import budget
from iseat.data.bundle import load_data
from iseat.evaluation.api import evaluation_data_config
from iseat.methods.training_attack import PGD
from iseat.training.avlog import AVLog
from iseat.training.checkpoint import model_from_checkpoint, read_checkpoint, sha256_of


@dataclass
class StudyInputs:
    """The model (eval mode) and its checkpoint, the data bundle and the un-augmented samples of the split."""

    model: object
    checkpoint: dict
    bundle: object
    dataset: object
    split: str


def study_attack(eps, step_size, steps: int, batch_size: int):
    """The PGD of a study (no random start: the adversarial direction is a function of the model)."""
    for name, value in (("pgd_steps", steps), ("batch_size", batch_size)):
        if value < 1:
            raise ParameterError(f"{{0}} must be at least 1, got {value}", name)
    return PGD(eps=budget(eps, "eps"), step_size=budget(step_size, "step_size"), steps=steps, random_start=False)


def margin_search(mu_max: float, step: float, growth: float, tol: float):
    try:
        return MarginSearch(mu_max=mu_max, step=step, growth=growth, tol=tol)
    except ValueError as err:
        raise UserError(str(err)) from None


def check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{{0}} {literal(out)} is a file; give a folder", "out")


def study_data_config(config: dict, split: str, data_root: str | None) -> dict:
    """The run's data section for a study of `split`, without its extra data: the test set alone, or the
    labelled training images the run trained on (its validation part kept out, as in training)."""
    data_cfg = evaluation_data_config(config, data_root, None)
    if split == "train":
        data_cfg["selection"] = config["data"].get("selection", data_cfg["selection"])
    return data_cfg


def load_bundle(config: dict, split: str, data_root: str | None):
    """The data of a run's config for a study of `split` (`study_data_config`), from `data_root` when the
    data moved since training."""
    try:
        return load_data(study_data_config(config, split, data_root), config.get("seed", 0))
    except (ValueError, OSError) as err:  # DataError is a ValueError
        raise UserError(f"data: {first_line(err)}") from None


def split_dataset(bundle, split: str):
    """The un-augmented samples of `split`: the test set, or the labelled training set (`bundle.train`,
    validation part excluded)."""
    dataset = bundle.test if split == "test" else getattr(bundle, "train", None)
    if dataset is None:
        raise ParameterError(
            "{0} train: the data bundle has no un-augmented training set (train); use the test split", "split"
        )
    return dataset


def load_inputs(checkpoint: Path, split: str, data_root: str | None, device) -> StudyInputs:
    """The checkpoint (read once), its data for `split` and its model in eval mode."""
    ckpt = read_checkpoint(checkpoint)
    bundle = load_bundle(ckpt["config"] if isinstance(ckpt.get("config"), dict) else {}, split, data_root)
    dataset = split_dataset(bundle, split)
    model = model_from_checkpoint(ckpt, checkpoint, device, expect_num_classes=bundle.num_classes)
    return StudyInputs(model, ckpt, bundle, dataset, split)


def stack_samples(dataset, positions):
    """(x, y, index) tensors of the samples at these positions of `dataset`."""
    items = [dataset[int(p)] for p in positions]
    return (
        torch.stack([torch.as_tensor(x) for x, _, _ in items]),
        torch.as_tensor([int(y) for _, y, _ in items]),
        np.array([int(i) for _, _, i in items], dtype=np.int64),
    )


def checkpoint_facts(path: Path, ckpt: dict) -> dict:
    return {
        "path": str(path),
        "sha256": sha256_of(path),
        "epoch": ckpt.get("epoch"),
        "architecture": ckpt["architecture"],
    }


def positions_of(bundle, dataset, wanted: list[int]) -> list[int]:
    """Positions in `dataset` of the wanted dataset indices (`dataset.indices`, or one pass over the data)."""
    indices = getattr(dataset, "indices", None)
    if indices is None:
        indices = np.concatenate([np.asarray(index) for _, _, index in bundle.eval_loader(dataset, 1024)])
    where = {int(i): p for p, i in enumerate(indices)}
    missing = [i for i in wanted if i not in where]
    if missing:
        raise ParameterError(
            f"{{0}}: dataset indices {missing[:5]} are not in the {len(indices)} samples of this split", "indices"
        )
    return [where[i] for i in wanted]


# ---------------------------------------------------------------------------------------------
# which samples a figure shows


def check_pick(pick: int) -> None:
    if pick < 1:
        raise ParameterError(f"{{0}} must be at least 1, got {pick}", "pick")


def samples_by_index(indices) -> tuple[list[int], list[str]]:
    return list(indices), [f"sample {i}" for i in indices]


def samples_by_margin(margins: Path, pick: int) -> tuple[list[int], list[str]]:
    """`pick` disordered samples, the most robust and the most vulnerable (margins.npz), as the paper's Fig. 3."""
    check_pick(pick)
    try:
        with np.load(margins) as arrays:
            return figure3_picks(dict(arrays), pick)
    except (OSError, KeyError, ValueError) as err:
        raise ParameterError(f"{{0}} {literal(margins)}: {literal(err)}", "margins") from None


def samples_by_av(log_path: Path, epoch: int, pick: int) -> tuple[list[int], list[str]]:
    """The `pick` most and `pick` least vulnerable samples of an AV log at `epoch` (-1: the last complete)."""
    check_pick(pick)
    with AVLog(log_path) as log:
        epoch = resolve_epoch(log.epochs, epoch, log_path)
        most = most_vulnerable(log, epoch, pick, least=False)
        least = most_vulnerable(log, epoch, pick, least=True)
    titles = [f"#{i} AV {a:.2f} (most)" for i, a in zip(most["index"], most["av"])]
    titles += [f"#{i} AV {a:.2f} (least)" for i, a in zip(least["index"], least["av"])]
    return [int(i) for i in most["index"]] + [int(i) for i in least["index"]], titles


def landscape_samples(
    indices=None, log_path: Path | None = None, margins: Path | None = None, epoch: int = -1, pick: int = 2
) -> tuple[list[int], list[str]]:
    """The samples a Fig. 3 shows, chosen one way: by dataset index, by AV (`log_path` at `epoch`) or by margin."""
    if sum(a is not None for a in (indices, log_path, margins)) != 1:
        raise ParameterError(
            "give one of {0}, {1} (the most and least vulnerable samples) or {2} (samples chosen by margin)",
            "indices",
            "log",
            "margins",
        )
    if indices is not None:
        return samples_by_index(indices)
    if margins is not None:
        return samples_by_margin(margins, pick)
    return samples_by_av(log_path, epoch, pick)
