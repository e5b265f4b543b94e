"""A run's model as a RobustBench submission: the leaderboard's model-info JSON and a state dict for
RobustBench's own architecture classes (`robustbench.model_zoo.architectures`).

`iseat.methods.models` names its layers differently from RobustBench; `robustbench_state_dict` renames them
(no tensor changes), so that `WideResNet(depth, num_classes, widen_factor)` and
`PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes, bn_before_fc=True, out_shortcut=True)` load it
with `strict=True` and give the same logits. Only standard AutoAttack numbers are exported: the
leaderboard lists nothing else; the report's protocol stamp goes into the evaluation details.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path

import torch

from iseat.common.errors import UserError
from iseat.common.io import atomic_path, write_json_atomic
from iseat.data import registry
from iseat.results import ResultsError
from iseat.results.protocols import stamp_of
from iseat.training.checkpoint import CheckpointError, read_checkpoint, sha256_of

DATASETS = tuple(n for n, d in registry.DATASETS.items() if d.robustbench)  # its l-inf leaderboards for 32x32 images
ISEAT_PAPER = {
    "link": "https://arxiv.org/abs/2303.14077",
    "name": "Improved Adversarial Training Through Adaptive Instance-wise Loss Smoothing",
    "authors": "Lin Li, Michael Spratling",
    "venue": "arXiv, Mar 2023",
}


class ExportError(UserError, ValueError):
    """A run that cannot be exported as it is (one line)."""


def wide_resnet_key(key: str, blocks_per_group: int) -> str:
    """`blocks.k.*` is block number k % n of group k // n (RobustBench: `block{g}.layer.{i}`, `convShortcut`)."""
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
    if match:
        k, rest = int(match[1]), match[2].replace("shortcut.", "convShortcut.")
        return f"block{k // blocks_per_group + 1}.layer.{k % blocks_per_group}.{rest}"
    return re.sub(r"^bn\.", "bn1.", key)


def preact_resnet18_key(key: str) -> str:
    """`layers.k.*` is block k % 2 of stage k // 2 (RobustBench: `layer{s}.{i}`, shortcut in a Sequential)."""
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", key)
    if match:
        k, rest = int(match[1]), match[2].replace("shortcut.", "shortcut.0.")
        return f"layer{k // 2 + 1}.{k % 2}.{rest}"
    return key


def robustbench_architecture(architecture: dict) -> dict:
    """The leaderboard's architecture name and the RobustBench constructor that loads the exported weights."""
    arch, classes = architecture["arch"], architecture["num_classes"]
    if architecture.get("activation", "relu") != "relu":
        raise ExportError(f"RobustBench's architectures use ReLU; this model uses {architecture['activation']}")
    if arch == "wide_resnet":
        depth, width = architecture["depth"], architecture["width"]
        return {
            "name": f"WideResNet-{depth}-{width}",
            "module": "wide_resnet",
            "constructor": f"WideResNet(depth={depth}, num_classes={classes}, widen_factor={width})",
        }
    if arch == "preact_resnet18":
        return {
            "name": "PreActResNet-18",
            "module": "resnet",
            "constructor": f"PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes={classes}, "
            "bn_before_fc=True, out_shortcut=True)",
        }
    raise ExportError(f"RobustBench has no architecture for {arch!r}; export wide_resnet or preact_resnet18")


def robustbench_state_dict(state_dict: dict, architecture: dict) -> OrderedDict:
    """The same tensors under RobustBench's layer names."""
    robustbench_architecture(architecture)
    if architecture["arch"] == "wide_resnet":
        n = (architecture["depth"] - 4) // 6
        rename = lambda key: wide_resnet_key(key, n)
    else:
        rename = preact_resnet18_key
    return OrderedDict((rename(key), tensor) for key, tensor in state_dict.items())


def eps_fraction(eps: float) -> str:
    """8/255 for 0.0313...: the leaderboard writes budgets as fractions of 255."""
    k = round(eps * 255)
    if abs(eps * 255 - k) > 1e-6:
        raise ExportError(f"eps {eps} is not a fraction k/255")
    return f"{k}/255"


def model_info(report: dict, architecture_name: str, paper: dict) -> dict:
    """The leaderboard entry (fields as in robustbench's model_info/<dataset>/Linf/*.json), plus how it was made."""
    dataset = report["data"]["dataset"]
    config = report.get("training_config") or {}
    robust = f"{100 * report['robust_accuracy']:.2f}"
    return {
        "link": paper["link"],
        "name": paper["name"],
        "authors": paper["authors"],
        "additional_data": bool((config.get("data") or {}).get("extra")),
        "number_forward_passes": 1,
        "dataset": dataset,
        "venue": paper["venue"],
        "architecture": architecture_name,
        "eps": eps_fraction(report["eps"]),
        "clean_acc": f"{100 * report['clean_accuracy']:.2f}",
        "reported": robust,
        "autoattack_acc": robust,
        "threat_model": report["norm"],
        "evaluation": {
            "protocol": report["protocol"],
            "label": report["label"],
            "n_examples": report["n_examples"],
            "test_set_size": report["data"]["test_set_size"],
            "settings": report["autoattack"]["settings"],
            "versions": report["provenance"]["versions"],
            "checkpoint_sha256": report["checkpoint"]["sha256"],
            "method": (config.get("method") or {}).get("name"),
            "stamp": report["stamp"],
        },
    }


def check_report(report: dict, path: Path) -> None:
    try:
        stamp_of(report, path)
    except ResultsError as err:
        raise ExportError(str(err)) from None
    if report.get("format") is None:
        raise ExportError(f"{path} is not an iseat evaluation report (no format); evaluate the run with iseat evaluate")
    if not report.get("standard") or report.get("protocol") != "autoattack-standard":
        raise ExportError(
            f"{path} is not a standard AutoAttack evaluation ({report.get('label')}); "
            "RobustBench lists standard AutoAttack only"
        )
    if report["data"]["dataset"] not in DATASETS:
        raise ExportError(
            f"{path}: RobustBench has no l-inf leaderboard for {report['data']['dataset']!r} "
            f"(only {', '.join(DATASETS)})"
        )
    if report.get("checkpoint") is None:
        raise ExportError(f"{path} evaluated a bare model, not a checkpoint")


def evaluated_checkpoint(run: Path, report: dict, path: Path) -> Path:
    """The checkpoint aa.json evaluated, found beside it, unchanged since (same sha256)."""
    checkpoint = run / Path(report["checkpoint"]["path"]).name
    if not checkpoint.is_file():
        raise ExportError(f"{checkpoint} (evaluated in {path}) does not exist")
    if sha256_of(checkpoint) != report["checkpoint"]["sha256"]:
        raise ExportError(f"{checkpoint} changed after {path} was written; evaluate it again")
    return checkpoint


def export_robustbench(
    run, out=None, *, evaluation: str = "aa.json", name: str | None = None, paper: dict | None = None
) -> dict:
    """Write `<name>.json` (model info) and `<name>.pt` (state dict) for RobustBench into `out`
    (default RUN/robustbench); returns their paths and the model info. Raises ExportError (one line)
    before writing anything when the run cannot be exported."""
    run = Path(run)
    if Path(evaluation).name != evaluation or evaluation in ("", ".", ".."):
        raise ExportError(
            f"{evaluation}: name the evaluation report by its file name in the run folder {run} (e.g. "
            f"aa.json), not by a path: the run's checkpoint is looked up beside it"
        )
    path = run / evaluation
    out = Path(out) if out is not None else run / "robustbench"
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder; give a folder for the export")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: not a readable evaluation report ({type(err).__name__})") from None
    check_report(report, path)
    try:
        ckpt = read_checkpoint(evaluated_checkpoint(run, report, path))
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    architecture = robustbench_architecture(ckpt["architecture"])
    config = report.get("training_config") or {}
    if paper is None:
        is_iseat = str((config.get("method") or {}).get("name", "")).startswith("iseat")
        paper = ISEAT_PAPER if is_iseat else {"link": "", "name": "", "authors": "", "venue": ""}
    info = {**model_info(report, architecture["name"], paper), "robustbench_model": architecture["constructor"]}
    name = name or f"iseat_{report['data']['dataset']}_{architecture['name']}"
    out.mkdir(parents=True, exist_ok=True)
    weights, info_path = out / f"{name}.pt", out / f"{name}.json"
    with atomic_path(weights) as tmp:
        torch.save(robustbench_state_dict(ckpt["model"], ckpt["architecture"]), tmp)
    write_json_atomic(info_path, info)
    return {"model_info": info_path, "state_dict": weights, "info": info}
