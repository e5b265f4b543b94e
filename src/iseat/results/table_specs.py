"""The paper's tables (Tab. 2-6) as specifications: each table's title and rows (paper setting, method, row
label), and the step benchmark's label of each Tab. 4 row (its time column)."""

from __future__ import annotations

from dataclasses import dataclass

from iseat.methods import registry as method_registry

# Tab. 4's time column: the step benchmark's label (`iseat benchmark step`) of each row's method.
STEP_TIMING_LABELS = {
    row: method_registry.tab4_labels()[method]
    for row, method in (("at", "at"), ("ft_at_lsi", "at_lsi"), ("ft_at_awp", "at_awp"), ("ft_iseat", "iseat"))
}


def step_time_ratios(timing: dict | None) -> dict:
    """Our step time relative to AT per Tab. 4 row method, from `iseat benchmark step --out` (fast path)."""
    if not timing:
        return {}
    rows = {r["method"]: r for r in timing.get("rows", []) if r.get("path", "fast") == "fast"}
    return {method: rows[label]["ratio_to_at"] for method, label in STEP_TIMING_LABELS.items() if label in rows}


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    rows: tuple  # (paper setting, method, row label)


TABLES = (
    TableSpec(
        "tab2",
        "Tab. 2: CIFAR-10, test accuracy and AutoAttack robustness (%)",
        (
            ("cifar10", "at", "AT"),
            ("cifar10", "trades", "TRADE"),
            ("cifar10", "infoat", "InfoAT (published, not run)"),
            ("cifar10", "gairat", "GAIRAT"),
            ("cifar10", "fat", "FAT"),
            ("cifar10", "rwp", "RWP"),
            ("cifar10", "mart", "MART"),
            ("cifar10", "at_awp", "AT-AWP"),
            ("cifar10", "mart_awp", "MART-AWP"),
            ("cifar10", "las_at", "LAS-AT (published, not run)"),
            ("cifar10", "las_awp", "LAS-AWP (published, not run)"),
            ("cifar10", "iseat", "ISEAT"),
            ("cifar10", "iseat_swa", "ISEAT + SWA"),
            ("cifar10_idbh", "at", "IDBH + AT"),
            ("cifar10_idbh", "iseat", "IDBH + ISEAT"),
            ("cifar10_idbh_wrn28", "iseat", "IDBH + ISEAT"),
            ("cifar10_ti500k", "rst", "RST"),
            ("cifar10_ti500k", "rst_mart", "RST + MART"),
            ("cifar10_ti500k", "rst_gairat", "RST + GAIRAT"),
            ("cifar10_ti500k", "rst_awp", "RST + AWP"),
            ("cifar10_ti500k", "rst_rwp", "RST + RWP"),
            ("cifar10_ti500k", "iseat", "ISEAT"),
        ),
    ),
    TableSpec(
        "tab3",
        "Tab. 3: CIFAR-100 and SVHN (PreActResNet18), accuracy and AutoAttack robustness (%)",
        (("cifar100", "at", "AT"), ("cifar100", "iseat", "ISEAT"), ("svhn", "at", "AT"), ("svhn", "iseat", "ISEAT")),
    ),
    TableSpec(
        "tab4",
        "Tab. 4: components of ISEAT, fine-tuned from the base AT model (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_at_lsi", "+ input smoothing"),
            ("cifar10", "ft_at_awp", "+ weight smoothing"),
            ("cifar10", "ft_iseat", "+ both (ISEAT)"),
        ),
    ),
    TableSpec(
        "tab5",
        "Tab. 5: distance and instance weights of the regulariser, fine-tuned (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_iseat_kl", "KL, unweighted"),
            ("cifar10", "ft_iseat_uniform", "squared l2, unweighted"),
            ("cifar10", "ft_iseat_top10", "squared l2, top-10 %"),
            ("cifar10", "ft_iseat", "squared l2, linear (ISEAT)"),
        ),
    ),
    TableSpec(
        "tab6",
        "Tab. 6: smoothing target, fine-tuned (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_iseat_lsi", "+ LSI"),
            ("cifar10", "ft_iseat_trade_awp", "+ TRADE-AWP (squared l2)"),
            ("cifar10", "ft_iseat", "+ LSIW (ISEAT)"),
        ),
    ),
)
TITLES = {spec.name: spec.title for spec in TABLES}
TITLES["all_results"] = "All results of this configuration, beside the paper's where a row maps onto it (%)"
