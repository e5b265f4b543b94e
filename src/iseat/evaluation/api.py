"""Library entry points: evaluate a model or a checkpoint, writing aa.json and the per-sample CSV beside it.

`evaluate_checkpoint` is what `iseat evaluate`, the workflow and the analysis call; `evaluate_model`
takes a model and a Dataset of (x, y, index) directly. Every input is checked before any file is
written; a killed run started again resumes from the partial file (see `chunks`).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch

from iseat.common import run_lock
from iseat.common.device import resolve_device
from iseat.common.errors import literal
from iseat.common.provenance import device_description, provenance
from iseat.data.bundle import load_data
from iseat.data.errors import DataError
from iseat.evaluation.chunks import chunk_bounds, model_digest, partial_path, run_chunks
from iseat.evaluation.evaluation_report import build_report, per_sample_path, write_outputs
from iseat.evaluation.shards import Shard, gather, write_shard
from iseat.evaluation.spec import EvaluationError, EvaluationInputError, EvaluationSpec
from iseat.training.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint, sha256_of


def check_out_path(out) -> Path:
    """Every file the evaluation will write (report, per-sample CSV, partial results) can be written."""
    out = Path(out)
    if out.suffix != ".json":
        raise EvaluationInputError(
            f"{{0}} {literal(out)} must be a .json file (the per-sample CSV goes beside it)", "out"
        )
    for path in (out, per_sample_path(out), partial_path(out)):
        if path.is_dir():
            raise EvaluationInputError(
                f"{{0}} {literal(out)}: {literal(path)} is a folder; choose another {{0}}", "out"
            )
    try:
        check_writable_folder(out.parent, str(out))
    except EvaluationError as err:
        raise EvaluationInputError(f"{{0}} {literal(err)}", "out") from None
    return out


def check_writable_folder(folder: Path, what: str) -> None:
    """`folder` (or, if it does not exist yet, its nearest existing parent, where it will be made) takes new
    files: probed with a temporary file, which also catches read-only mounts, ACLs and full quotas."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise EvaluationError(f"{what}: {existing} is a file, not a folder; choose another location")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise EvaluationError(
            f"{what}: cannot write in {existing} ({err.strerror}); make it writable or choose another location"
        ) from None


def sample_count(spec: EvaluationSpec, available: int) -> int:
    if spec.n_ex is None:
        return available
    if spec.n_ex > available:
        raise EvaluationInputError(f"{{0}} {spec.n_ex} is more than the {available} test samples", "n_ex")
    return spec.n_ex


def check_output_width(model, dataset, num_classes: int, device, name: str) -> None:
    x = torch.as_tensor(dataset[0][0]).float().unsqueeze(0).to(device)
    with torch.no_grad():
        width = model.eval()(x).shape[1]
    if width != num_classes:
        raise CheckpointError(f"{name} outputs {width} classes but the data set has {num_classes}")


def evaluate_model(
    model,
    dataset,
    out,
    spec: EvaluationSpec,
    *,
    num_classes: int,
    device="cpu",
    source: dict | None = None,
    data: dict | None = None,
    progress: bool = True,
    shard: Shard | None = None,
    gather_from: list | None = None,
) -> dict:
    """Evaluate `model` on the first `spec.n_ex` samples of `dataset`; returns the written report.

    The model is moved to `device` and put in eval mode (and left so).

    `source` holds the `checkpoint` and `training_config` entries of the report (None for a bare model).
    With `shard`, only that shard's chunks are evaluated and `out` is its shard file (returned: a summary);
    with `gather_from` (the K shard files, in order) nothing is evaluated: the report is made from them.
    """
    out = check_out_path(out)
    if shard is not None and gather_from is not None:
        raise EvaluationInputError(
            "{0} and {1} exclude each other: evaluate a shard or gather the shards", "shard", "gather"
        )
    device = resolve_device(str(device))
    n = sample_count(spec, len(dataset))
    model = model.to(device).eval()
    fingerprint = {**spec.fingerprint(), "n_examples": n, "num_classes": num_classes, "model": model_digest(model)}
    partial = partial_path(out)
    attacks = spec.build_attacks(model, num_classes=num_classes, device=device)
    bounds = chunk_bounds(n, spec.chunk_size)
    only = None if shard is None else shard.chunks(len(bounds))
    out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock.hold(out.with_name(f".{out.name}.lock"), f"evaluation output {out}"):  # one writer per report
        where = device_description(device)
        if gather_from is not None:
            chunks, runs, where = gather(gather_from, fingerprint, bounds)
        else:
            chunks, runs = run_chunks(model, dataset, n, spec, attacks, device, partial, fingerprint, progress, only)
        if shard is not None:
            write_shard(out, shard, fingerprint, {str(i): c for i, c in zip(only, chunks)}, runs, where)
            partial.unlink(missing_ok=True)
            return {
                "shard": str(shard),
                "chunks": list(only),
                "n_examples": sum(len(c["index"]) for c in chunks),
                "warnings": [w for c in chunks for w in c.get("warnings", [])],
            }
        data = {
            "dataset": None,
            "split": "test",
            **(data or {}),
            "test_set_size": len(dataset),
            "subset": f"first {n} samples",
        }
        report = build_report(
            chunks,
            spec,
            attacks,
            device=where,
            source=source or {"checkpoint": None, "training_config": None},
            data=data,
            provenance=provenance(device, spec.seed),
            runs=runs,
            per_sample_file=per_sample_path(out).name,
        )
        write_outputs(out, report, chunks)
        partial.unlink(missing_ok=True)
        return report


def evaluation_data_config(cfg: dict, data_root: str | None, dataset: str | None) -> dict:
    """The training run's data section, pointed at the test set only (no extra data, no validation split)."""
    if not isinstance(cfg.get("data"), dict):
        raise CheckpointError("the checkpoint's training config has no data section")
    data_cfg = copy.deepcopy(cfg["data"])
    data_cfg.update(extra=None, selection="test")
    if dataset is not None:
        data_cfg["dataset"] = dataset
    if data_root is not None:
        data_cfg["root"] = str(data_root)
    return data_cfg


def load_test_set(data_cfg: dict, seed: int):
    """(test Dataset, num_classes) via `iseat.data.load_data`; DataError becomes EvaluationError."""
    try:
        bundle = load_data(data_cfg, seed)
    except DataError as err:
        raise EvaluationError(str(err)) from None
    return bundle.test, bundle.num_classes


def load_evaluated(checkpoint, *, data_root=None, dataset=None, expect_arch: str | None = None, device="cpu"):
    """(model, test Dataset, num_classes, source, data) of a checkpoint on its training data set's test split (or
    `dataset`'s): what an evaluation of it attacks and records. CheckpointError or EvaluationError on bad input."""
    path = Path(checkpoint)
    ckpt = read_checkpoint(path)
    cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    data_cfg = evaluation_data_config(cfg, data_root, dataset)
    test, num_classes = load_test_set(data_cfg, int(cfg.get("seed", 0)))
    model = model_from_checkpoint(ckpt, path, device, expect_num_classes=num_classes, expect_arch=expect_arch)
    check_output_width(model, test, num_classes, device, str(path))
    source = {
        "checkpoint": {
            "path": str(path),
            "sha256": sha256_of(path),
            "format": ckpt["format"],
            "epoch": ckpt.get("epoch"),
            "architecture": ckpt["architecture"],
        },
        "training_config": cfg,
    }
    return model, test, num_classes, source, {"dataset": data_cfg.get("dataset"), "root": data_cfg.get("root")}


def evaluate_checkpoint(
    checkpoint,
    out,
    spec: EvaluationSpec | None = None,
    *,
    data_root=None,
    dataset=None,
    expect_arch: str | None = None,
    device="auto",
    progress: bool = True,
    shard: Shard | None = None,
    gather_from: list | None = None,
) -> dict:
    """Evaluate a checkpoint on its training data set's test split (or `dataset`'s); returns the written report
    (`shard`, `gather_from`: as `evaluate_model`).

    Raises CheckpointError or EvaluationError (one line) before writing anything on bad input.
    """
    spec = spec or EvaluationSpec()
    out = check_out_path(out)
    device = resolve_device(str(device))
    model, test, num_classes, source, data = load_evaluated(
        checkpoint, data_root=data_root, dataset=dataset, expect_arch=expect_arch, device=device
    )
    sample_count(spec, len(test))
    return evaluate_model(
        model,
        test,
        out,
        spec,
        num_classes=num_classes,
        device=device,
        source=source,
        data=data,
        progress=progress,
        shard=shard,
        gather_from=gather_from,
    )
