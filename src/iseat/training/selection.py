"""Model selection at each epoch end: clean and PGD accuracy on the selection set, and the best and last
checkpoints kept (and SWA's, scored on its batch-norm-refreshed average)."""

from __future__ import annotations

from iseat.common import distributed
from iseat.common.fraction import parse_fraction
from iseat.methods.training_attack import PGD, clean_and_robust_accuracy
from iseat.training.checkpoint import model_checkpoint, save_atomic


def selection_attack(cfg: dict) -> PGD:
    """Model selection: PGD-k, step eps/4 unless given, no random start (as the reference)."""
    eps = parse_fraction(cfg["attack"]["eps"])
    step = cfg["evaluation"]["pgd_step_size"]
    return PGD(eps, parse_fraction(step) if step is not None else eps / 4, cfg["evaluation"]["pgd_steps"], False)


def select(run, epoch: int, row: dict) -> dict:
    """Clean and PGD accuracy on the selection set; keep best and last checkpoints (and SWA's)."""
    cfg, p = run.cfg, run.progress
    loader = run.data.eval_loader(run.data.selection, cfg["evaluation"]["batch_size"])
    attack, limit = selection_attack(cfg), cfg["evaluation"]["max_samples"]
    clean, robust = distributed.sharded_accuracy(
        clean_and_robust_accuracy, run.model, loader, attack, run.device, limit
    )
    out = {"selection_clean_acc": clean, "selection_pgd_acc": robust}
    metrics = {**row, **out}
    writer = distributed.is_writer()
    if writer:
        save_atomic(model_checkpoint(run.model, run.architecture, epoch, metrics, cfg), run.out / "last.pt")
    if robust > p.best_pgd:
        p.best_pgd, p.best_epoch = robust, epoch
        if writer:
            save_atomic(model_checkpoint(run.model, run.architecture, epoch, metrics, cfg), run.out / "best.pt")
    if run.swa is not None and epoch >= cfg["training"]["swa"]["start_epoch"]:
        out.update(select_swa(run, epoch, loader, attack, limit, metrics))
    return out


def select_swa(run, epoch: int, loader, attack: PGD, limit, metrics: dict) -> dict:
    p = run.progress
    averaged = run.swa.averaged_model(
        run.data.train_loader(run.cfg["training"]["batch_size"], p.epoch, run.cfg["seed"] + 1, run.data_workers()),
        run.device,
    )
    clean, robust = clean_and_robust_accuracy(averaged, loader, attack, run.device, limit)
    out = {"swa_selection_clean_acc": clean, "swa_selection_pgd_acc": robust}
    ckpt = model_checkpoint(averaged, run.architecture, epoch, {**metrics, **out}, run.cfg)
    save_atomic(ckpt, run.out / "swa_last.pt")
    if robust > p.swa_best_pgd:
        p.swa_best_pgd, p.swa_best_epoch = robust, epoch
        save_atomic(ckpt, run.out / "swa_best.pt")
    return out
