"""The paired comparisons of a configuration as files: one row per (method, reference) comparison with its
accuracies, difference, interval and McNemar p-values, Holm-adjusted over the file (significance.csv/.md)."""

from __future__ import annotations

from iseat.results import comparisons
from iseat.results.writers import csv_cell


def significance_columns(compared: dict) -> dict:
    """One row per comparison (method vs reference): accuracies, difference, interval, McNemar p-values, and
    the largest per-seed p Holm-adjusted over all comparisons of the file."""
    keys = list(compared)
    compared = dict(zip(keys, comparisons.adjust([compared[k] for k in keys])))
    get = lambda name: [None if compared[k] is None else compared[k][name] for k in keys]
    return {
        "setting": [s for s, _, _ in keys],
        "method": [m for _, m, _ in keys],
        "reference": [r for _, _, r in keys],
        "seeds": [None if compared[k] is None else " ".join(map(str, compared[k]["seeds"])) for k in keys],
        "n_examples": [None if compared[k] is None else " ".join(map(str, compared[k]["n_examples"])) for k in keys],
        "accuracy_method": get("accuracy_a"),
        "accuracy_reference": get("accuracy_b"),
        "difference": get("difference"),
        "ci95_low": get("low"),
        "ci95_high": get("high"),
        "n_method_only": get("n_ab"),
        "n_reference_only": get("n_ba"),
        "mcnemar_p": [None if compared[k] is None else " ".join(map(csv_cell, compared[k]["p_values"])) for k in keys],
        "significant": [None if compared[k] is None else int(compared[k]["significant"]) for k in keys],
        "p_holm": get("p_holm"),
        "significant_holm": [None if compared[k] is None else int(compared[k]["significant_holm"]) for k in keys],
    }


def significance_markdown(columns: dict, setting_labels: dict, method_labels: dict) -> str:
    lines = [
        "### Paired comparisons on the same test images (AutoAttack robust accuracy, %)",
        "",
        "| setting | method | reference | seeds | method (%) | reference (%) | difference | 95 % interval "
        "| McNemar p per seed | significant | Holm p | significant (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in range(len(columns["setting"])):
        c = {k: v[i] for k, v in columns.items()}
        c |= {
            "setting": setting_labels.get(c["setting"], c["setting"]),
            "method": method_labels.get(c["method"], c["method"]),
            "reference": method_labels.get(c["reference"], c["reference"]),
        }
        if c["seeds"] is None:
            lines.append(f"| {c['setting']} | {c['method']} | {c['reference']} |" + " — |" * 9)
            continue
        interval = "—" if c["ci95_low"] is None else f"[{c['ci95_low']:+.2f}, {c['ci95_high']:+.2f}]"
        lines.append(
            f"| {c['setting']} | {c['method']} | {c['reference']} | {c['seeds']} | "
            f"{c['accuracy_method']:.2f} | {c['accuracy_reference']:.2f} | "
            f"{c['difference']:+.2f} | {interval} | {' '.join(f'{float(p):.3g}' for p in c['mcnemar_p'].split())} | "
            f"{comparisons.MARK if c['significant'] else 'no'} | {c['p_holm']:.3g} | "
            f"{comparisons.HOLM_MARK if c['significant_holm'] else 'no'} |"
        )
    lines += [
        "",
        "Difference: method − reference, percentage points; the interval is over seeds (none with one "
        "seed); " + comparisons.RULE + " (here: all comparisons of this file); — = no shared seed with per-sample "
        "results.",
    ]
    return "\n".join(lines) + "\n"
