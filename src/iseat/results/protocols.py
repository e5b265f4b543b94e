"""One protocol per table: results are put side by side only when their aa.json protocol stamps agree
(`iseat.evaluation.protocol_stamp`: threat model, attack settings, seed, test indices, model mode, normalisation,
checkpoint selection, data checksum, library versions); results on different data sets need not share
test data. Evaluation files without a `format` are not `iseat evaluate` reports (e.g. hand-made) and
carry no stamp; reports written before the stamp existed are refused with the fix."""

from __future__ import annotations

from iseat.evaluation.protocol_stamp import MODEL_FIELDS, difference
from iseat.results import ResultsError

STAMPED_FORMATS = ("iseat-robustness-v2", "iseat-eps-sweep-v1")  # aa.json/pgd.json, sweep.json
UNSTAMPED_FORMATS = ("iseat-robustness-v1",)


def stamp_of(report: dict, path) -> dict | None:
    """The protocol stamp of an evaluation report; None for a file that is not an `iseat evaluate` report."""
    fmt = report.get("format")
    if fmt in UNSTAMPED_FORMATS:
        raise ResultsError(
            f"{path} was written before reports carried a protocol stamp ({fmt}); rerun its "
            f"evaluation (delete it and its per-sample CSV, then run the workflow again)"
        )
    if fmt is None:
        return None
    if fmt not in STAMPED_FORMATS or not isinstance(report.get("stamp"), dict):
        raise ResultsError(f"{path}: unknown report format {fmt!r} or no protocol stamp; rerun its evaluation")
    return report["stamp"]


def protocol_of(stamp: dict | None) -> dict | None:
    """The stamp without the model's own identity (checkpoint file, hash, epoch): what seeds share."""
    if stamp is None or stamp.get("checkpoint") is None:
        return stamp
    fields = {f.split(".", 1)[1] for f in MODEL_FIELDS}
    return {**stamp, "checkpoint": {k: v for k, v in stamp["checkpoint"].items() if k not in fields}}


def check_side_by_side(named: dict, what: str) -> None:
    """Raise ResultsError naming two results of `named` {name: aggregated result or report} whose stamps
    disagree: each is held against the first result (all but the test data when on another data set) and
    against the first on its own data set (everything)."""
    stamped = [(name, r["stamp"]) for name, r in named.items() if r and r.get("stamp")]
    first_of: dict = {}
    for name, stamp in stamped:
        dataset = stamp["data"]["dataset"]
        first_of.setdefault(dataset, (name, stamp))
        for other, reference in (stamped[0], first_of[dataset]):
            diff = difference(reference, stamp, same_dataset=reference["data"]["dataset"] == dataset)
            if diff is not None:
                raise ResultsError(
                    f"{what}: {other} and {name} were evaluated under different protocols "
                    f"({diff}); evaluate both the same way"
                )
